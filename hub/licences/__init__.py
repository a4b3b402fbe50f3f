"""电子证照: the licences the hub issues, their library, verification and revocation."""
