"""Stage 2 of the journey: the pure audit engine. No Kafka, no faust, no I/O, no clock."""
