WITH j AS (
    SELECT nullif(least(video_width, video_height), 0) AS short_side, video_codec, duration_s
    FROM jobs WHERE TRUE AND creation_time >= ? AND creation_time < ? AND list_contains(?::VARCHAR[], tag) AND list_contains(?::VARCHAR[], queue_id)
), ranked AS (
    SELECT CASE WHEN short_side IS NULL THEN 5 WHEN short_side <= 480 THEN 0 WHEN short_side <= 720 THEN 1 WHEN short_side <= 1080 THEN 2 WHEN short_side <= 1440 THEN 3
        ELSE 4 END AS rank, video_codec, duration_s
    FROM j
)
SELECT (['SD', 'HD', 'FHD', 'QHD', '4K+', 'audio/none'])[rank + 1] AS resolution, video_codec, count(*)::BIGINT AS jobs,
    (coalesce(sum(duration_s), 0) / 60)::DOUBLE AS media_minutes
FROM ranked GROUP BY rank, video_codec
ORDER BY rank, jobs DESC, video_codec NULLS LAST
