"""Helpers shared by the tests, the benchmarks and scripts/prodlike.py (none of them is a test):

- `sshd`: a throwaway OpenSSH sshd serving SFTP on loopback (tests, benchmarks, prodlike's drop);
- `samples`, `intake_samples`: sample applications, users and intake batch records;
- `webserver`: the real web app under uvicorn on a loopback port, for browser tests;
- `signing_e2e`: the Chromium remote-signing walk, run in a network namespace by
  tests/test_signing_browser.py;
- `airflow_runner`: runs the DAGs with dag.test() in a process of its own (tests, benchmarks)."""
