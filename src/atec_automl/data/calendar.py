"""The holidays of the ATEC data's timeline (2017-09 to 2018-03), first and last day inclusive.

One source for the generator's seasonal volume and trips and for the features' holiday flag.
"""
from __future__ import annotations

NATIONAL_DAY = ("2017-10-01", "2017-10-08")
SPRING_FESTIVAL = ("2018-02-15", "2018-02-21")
HOLIDAYS = (NATIONAL_DAY, SPRING_FESTIVAL)
