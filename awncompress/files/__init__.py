"""Reading and writing files safely: atomic writes, paths kept inside their folder, strict schemas for what is read.

The bottom of the house: it imports nothing of awncompress but ``errors``."""
