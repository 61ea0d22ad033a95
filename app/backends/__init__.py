"""Where resident data comes from: the national database over HTTP, the embedded mock, or a fake."""
