"""Read models folded from events, and their renderers (`show` text, JSON).

Every `show` output is a pure function of the folded state (and, where a show prints the time
of something, of the recorded event time), so replaying a log to any seq reproduces exactly
what the device would have shown then.
"""
