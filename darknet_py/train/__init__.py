"""Training as Darknet's ``detector train``: data, schedule, optimizer, checkpoints, the loop."""
