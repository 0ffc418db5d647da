from django.core.management.base import BaseCommand

from messaging import stats


class Command(BaseCommand):
    help = "Print the figures of /api/stats/ (with per-process lines)."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="one JSON object")

    def handle(self, *args, json=False, **options):
        import json as jsonlib

        figures = stats.collect(per_process=True)
        if json:
            self.stdout.write(jsonlib.dumps(figures))
            return
        for key, value in figures.items():
            if key != "processes":
                self.stdout.write(f"{key:>22}  {value}")
        for line in figures.get("processes", []):
            self.stdout.write(
                f"{'process':>22}  {line['process']}  connections={line['connections']} "
                f"uptime={line['uptime_seconds']}s"
            )
