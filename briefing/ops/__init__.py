"""Run the service: the scheduler, ops' controls, the scheduler lock, the timetable."""
