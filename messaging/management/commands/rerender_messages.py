from django.core.management.base import BaseCommand
from django.db import transaction

from messaging import mentions
from messaging.models import Mention, Message
from messaging.rendering import render

BATCH = 500


class Command(BaseCommand):
    help = (
        "Render the Markdown of messages stored before rendering existed (an empty "
        "content_html): their content_html, the members they mention by name and those "
        "mentions' counts. (`@here` names who was online when a message was sent: "
        "unknown afterwards, so it adds nobody here.) With --all, re-render the HTML of "
        "every message (after a change of the renderer); mentions stay as they are."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--all", action="store_true", help="every message's HTML, not only the missing"
        )

    def handle(self, *args, all: bool = False, **options):
        messages = Message.objects.exclude(content="").order_by("pk")
        if not all:
            messages = messages.filter(content_html="")
        done = 0
        last = 0
        while True:
            batch = list(messages.filter(pk__gt=last)[:BATCH])
            if not batch:
                break
            last = batch[-1].pk
            with transaction.atomic():
                if all:
                    for message in batch:
                        message.content_html = render(message.content).html
                    Message.objects.bulk_update(batch, ["content_html"])
                else:
                    self._with_mentions(batch)
            done += len(batch)
        self.stdout.write(self.style.SUCCESS(f"Rendered {done} message(s)."))

    def _with_mentions(self, batch: list[Message]) -> None:
        by_room: dict[int, list[Message]] = {}
        for message in batch:
            by_room.setdefault(message.room_id, []).append(message)
        for room_id, messages in by_room.items():
            shown = mentions.render_in_room(
                room_id,
                [m.content for m in messages],
                [m.sender_id for m in messages],
                here=False,
            )
            for message, one in zip(messages, shown, strict=True):
                mentions.apply(message, one)
            Message.objects.bulk_update(messages, ["content_html", "mentions", "mentions_room"])
            Mention.objects.filter(message__in=messages).delete()
            mentions.store_mentions(messages)
