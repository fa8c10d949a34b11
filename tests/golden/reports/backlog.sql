WITH j AS (SELECT creation_time AS c, CASE
        WHEN end_time IS NOT NULL THEN greatest(end_time, creation_time)
        WHEN not_found_at IS NOT NULL THEN greatest(not_found_at, creation_time)
        WHEN state IN ('Success', 'Failed', 'Cancel') THEN greatest(creation_time, start_time)
    END AS f FROM jobs WHERE TRUE AND creation_time IS NOT NULL AND list_contains(?::VARCHAR[], tag) AND list_contains(?::VARCHAR[], queue_id)) SELECT to_timestamp((floor((epoch_us(coalesce(?::TIMESTAMPTZ, min(c))) - 946857600000000) / 21600000000) * 21600000000 + 946857600000000) / 1e6), to_timestamp((floor((epoch_us(coalesce(?::TIMESTAMPTZ, max(coalesce(f, c)))) - 946857600000000) / 21600000000) * 21600000000 + 946857600000000) / 1e6) FROM j HAVING count(*) > 0
;
WITH j AS (SELECT creation_time AS c, CASE
        WHEN end_time IS NOT NULL THEN greatest(end_time, creation_time)
        WHEN not_found_at IS NOT NULL THEN greatest(not_found_at, creation_time)
        WHEN state IN ('Success', 'Failed', 'Cancel') THEN greatest(creation_time, start_time)
    END AS f FROM jobs WHERE TRUE AND creation_time IS NOT NULL AND list_contains(?::VARCHAR[], tag) AND list_contains(?::VARCHAR[], queue_id)
), ev AS (
    SELECT to_timestamp((floor((epoch_us(c) - 946857600000000) / 21600000000) * 21600000000 + 946857600000000) / 1e6) AS b, 1 AS dc, 0 AS df FROM j
    UNION ALL
    SELECT to_timestamp((floor((epoch_us(f) - 946857600000000) / 21600000000) * 21600000000 + 946857600000000) / 1e6) AS b, 0 AS dc, 1 AS df FROM j WHERE f IS NOT NULL
), per AS (
    SELECT b, sum(dc) AS created, sum(df) AS finished FROM ev GROUP BY b
), periods AS (
    SELECT unnest(generate_series(?::TIMESTAMPTZ, ?::TIMESTAMPTZ, ?)) AS period
), carried AS (
    SELECT coalesce(sum(created - finished), 0) AS n FROM per WHERE b < ?::TIMESTAMPTZ
)
SELECT p.period,
    coalesce(per.created, 0)::BIGINT AS created,
    coalesce(per.finished, 0)::BIGINT AS finished,
    (c.n + sum(coalesce(per.created, 0) - coalesce(per.finished, 0))
        OVER (ORDER BY p.period))::BIGINT AS open
FROM periods AS p CROSS JOIN carried AS c LEFT JOIN per ON per.b = p.period
ORDER BY p.period
