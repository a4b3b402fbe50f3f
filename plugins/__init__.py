"""Built-in connector plugins (SOAP, SFTP, REST) and the sandbox department systems.

They arrive with issue [2/6] and are registered through the `hub` entry-point group exactly as a
third-party package's would be: the core never imports this package by name."""
