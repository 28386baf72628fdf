"""Where inputs come from (files, directory walks) and where outputs may go (never over an
input, never over an existing file unless forced)."""
