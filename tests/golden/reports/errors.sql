SELECT code, message, count(*)::BIGINT AS jobs,
    first(job_id ORDER BY creation_time DESC NULLS LAST, job_id DESC) AS example_job_id
FROM jobs WHERE state = 'Failed' AND TRUE AND creation_time >= ? AND creation_time < ? AND list_contains(?::VARCHAR[], tag) AND list_contains(?::VARCHAR[], queue_id)
GROUP BY code, message
ORDER BY jobs DESC, code NULLS LAST, message NULLS LAST
LIMIT ?
