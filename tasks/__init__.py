"""The stages of Ferry's pipelines, one module per stage name."""
