"""Jobs: plain, idempotent, resumable functions. The same code runs from `hub run JOB`, from an
Airflow task and from tests; none of them knows which."""
