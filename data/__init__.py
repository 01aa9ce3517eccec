"""Dataset converters: raw public dumps -> data/<Category>/ in the official SPRec format."""
