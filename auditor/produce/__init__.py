"""`auditor produce`: JSON Lines events onto their Kafka topics (kafka-python)."""
