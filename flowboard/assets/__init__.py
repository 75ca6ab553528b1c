"""Assets: uploaded inputs and generated outputs, with their stored media."""
