"""Tongban Hub (通办枢纽): the integration hub for county government service centres."""

__version__ = "0.1.0"
