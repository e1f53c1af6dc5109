"""Dramatiq actors of the console app."""

import dramatiq

from console import rollup


@dramatiq.actor(queue_name="maintenance", max_retries=0)
def roll_up_calls():
    rollup.roll_up()
