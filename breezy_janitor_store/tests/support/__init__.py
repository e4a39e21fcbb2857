"""What the tests share: fixtures, hostile clients, shared test bases.

A test module imports from here, never from another test module.
"""
