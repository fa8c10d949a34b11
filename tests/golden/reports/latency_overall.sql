SELECT 
    quantile_cont(queue_wait_s, 0.5)::DOUBLE AS p50_queue_wait_s,
    quantile_cont(queue_wait_s, 0.9)::DOUBLE AS p90_queue_wait_s,
    quantile_cont(processing_s, 0.5)::DOUBLE AS p50_processing_s,
    quantile_cont(processing_s, 0.9)::DOUBLE AS p90_processing_s,
    quantile_cont(processing_s, 0.99)::DOUBLE AS p99_processing_s,
    quantile_cont(speed_x, 0.5)::DOUBLE AS median_speed_x
FROM jobs WHERE TRUE AND creation_time >= ? AND creation_time < ? AND list_contains(?::VARCHAR[], tag) AND list_contains(?::VARCHAR[], queue_id)
HAVING count(*) > 0
