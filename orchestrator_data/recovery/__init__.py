"""Recovery of the database and what follows it (aftermath: the rest of the data layer brought in line)."""
