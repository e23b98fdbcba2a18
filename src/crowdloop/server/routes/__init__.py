"""The API's routes, one module per part of the job: setup, the loop, results."""
