"""Domain services: functions taking a connection first, holding the rules and the SQL, raising
domain errors (never HTTP ones)."""
