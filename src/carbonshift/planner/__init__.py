"""The planner: series in, plans out, no I/O of its own.

Import from the submodules (`carbonshift.planner.plan`, `.energy`, `.contiguous`, `.interruptible`,
`.placement`). This package file re-exports nothing on purpose: the job spec imports
`carbonshift.planner.power_tables` to check GPU names, and eager re-exports here would make that a
circular import.
"""
