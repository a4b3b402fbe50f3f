"""Intake batches from bank outlets and enclave windows: the format (`format`), reading records
in bounded memory (`records`), and staging a fetched batch and checking it against its manifest
(`staging`). The job that turns a batch into applications is `hub.jobs.ingest`."""
