"""Layout search: every layout of a job on a cluster (`search_training`), hardware choice (`choose_hardware`).

Data flows specs → formulas → estimate → plan: the search calls the estimates, never the reverse.
"""
