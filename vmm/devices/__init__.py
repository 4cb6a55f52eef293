"""Built-in devices. Each registers itself on a `Machine` through the public handler API."""
