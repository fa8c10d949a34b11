SELECT to_timestamp((floor((epoch_us(min(creation_time)) - 946857600000000) / 3600000000) * 3600000000 + 946857600000000) / 1e6), to_timestamp((floor((epoch_us(max(creation_time)) - 946857600000000) / 3600000000) * 3600000000 + 946857600000000) / 1e6) FROM jobs WHERE TRUE AND creation_time IS NOT NULL AND creation_time >= ? AND creation_time < ? AND list_contains(?::VARCHAR[], tag) AND list_contains(?::VARCHAR[], queue_id)
;
WITH j AS (
    SELECT to_timestamp((floor((epoch_us(creation_time) - 946857600000000) / 3600000000) * 3600000000 + 946857600000000) / 1e6) AS period, "tag" AS g, state, duration_s
    FROM jobs WHERE TRUE AND creation_time IS NOT NULL AND creation_time >= ? AND creation_time < ? AND list_contains(?::VARCHAR[], tag) AND list_contains(?::VARCHAR[], queue_id)
), agg AS (
    SELECT period, g, count(*) AS jobs,
        count(*) FILTER (WHERE state = 'Success') AS succeeded,
        count(*) FILTER (WHERE state = 'Failed') AS failed,
        coalesce(sum(duration_s), 0) / 60 AS media_minutes
    FROM j GROUP BY period, g
), periods AS (
    SELECT unnest(generate_series(?::TIMESTAMPTZ, ?::TIMESTAMPTZ, ?)) AS period
), groups AS (
    SELECT DISTINCT g FROM agg
)
SELECT p.period, g.g AS "tag",
    coalesce(a.jobs, 0)::BIGINT AS jobs,
    coalesce(a.succeeded, 0)::BIGINT AS succeeded,
    coalesce(a.failed, 0)::BIGINT AS failed,
    coalesce(a.media_minutes, 0)::DOUBLE AS media_minutes
FROM periods AS p CROSS JOIN groups AS g
LEFT JOIN agg AS a ON a.period = p.period AND a.g IS NOT DISTINCT FROM g.g
ORDER BY p.period, g.g NULLS LAST
