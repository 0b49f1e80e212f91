"""Static files: URL path -> file under the root, validators, conditional requests, ranges, listings."""
