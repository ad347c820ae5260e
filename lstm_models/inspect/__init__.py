"""Inside the cells: gates (`gates`), gradient flow (`gradients`), and the views logged after a sweep (`views`)."""
