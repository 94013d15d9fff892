"""`batchlog demo`: rendered sample scenes, a realistic queue, a measured run and an HTML report."""
