"""The load harness behind `make bench`: OServer side by side with nginx and the Python servers (issue 7)."""
