"""Fault injection: lrmscope killed, interrupted, out of disk space or locked out, with nothing
already saved lost and the database intact (issue 8, README "Reliability")."""
