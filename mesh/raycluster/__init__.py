"""lanai on a Ray cluster: nodes placed by Ray's scheduler as actors (`lanai ray up`) and the
router's `--discovery ray`, which follows them. Importing this package does not import Ray;
each module imports it where it is needed (it is the optional `ray` extra)."""
