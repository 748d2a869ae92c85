"""The booking service's domain, storage and HTTP edge (packaged with the Lambda by Chalice)."""
