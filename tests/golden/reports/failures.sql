WITH j AS (
    SELECT "queue_id" AS g, state, code FROM jobs WHERE TRUE AND creation_time >= ? AND creation_time < ? AND list_contains(?::VARCHAR[], tag) AND list_contains(?::VARCHAR[], queue_id)
), agg AS (
    SELECT g, count(*) AS jobs,
        count(*) FILTER (WHERE state IN ('Success', 'Failed')) AS finished,
        count(*) FILTER (WHERE state = 'Failed') AS failed
    FROM j GROUP BY g
), top AS (
    SELECT g, code FROM (
        SELECT g, code, count(*) AS n FROM j
        WHERE state = 'Failed' AND code IS NOT NULL GROUP BY g, code
    )
    QUALIFY row_number() OVER (PARTITION BY g ORDER BY n DESC, code) = 1
)
SELECT a.g AS "queue_id", a.jobs::BIGINT AS jobs, a.finished::BIGINT AS finished, a.failed::BIGINT AS failed,
    CASE WHEN a.finished > 0 THEN a.failed / a.finished END::DOUBLE AS failure_rate,
    t.code AS top_code
FROM agg AS a LEFT JOIN top AS t ON a.g IS NOT DISTINCT FROM t.g
ORDER BY a.failed DESC, a.jobs DESC, a.g NULLS LAST
