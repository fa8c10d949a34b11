SELECT count(*)::BIGINT AS jobs,
    count(*) FILTER (WHERE state IN ('Success', 'Failed'))::BIGINT AS finished,
    count(*) FILTER (WHERE state = 'Failed')::BIGINT AS failed,
    CASE WHEN finished > 0 THEN failed / finished END::DOUBLE AS failure_rate,
    (coalesce(sum(duration_s), 0) / 3600)::DOUBLE AS media_hours,
    quantile_cont(processing_s, 0.9)::DOUBLE AS p90_processing_s,
    min(creation_time) AS first_created,
    max(creation_time) AS last_created
FROM jobs WHERE TRUE AND creation_time >= ? AND creation_time < ? AND list_contains(?::VARCHAR[], tag) AND list_contains(?::VARCHAR[], queue_id)
