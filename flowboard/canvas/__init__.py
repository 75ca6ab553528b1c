"""The canvas: flows of nodes and edges, their validation and their edits."""
