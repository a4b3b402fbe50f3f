"""The offline kit (政务背包): enrolled devices, the catalogue bundle a kit loads, sync exactly once."""
