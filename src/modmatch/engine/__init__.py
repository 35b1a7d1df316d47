"""The engine: Python regexes compiled once (RE2 sets, the few ``re`` fallbacks), answers cached.

It speaks Python regex, not wildcards: :mod:`.syntax` says how each framework's pattern becomes
the regex its framework would run. The framework modules above build on :mod:`.patternset`.
"""
