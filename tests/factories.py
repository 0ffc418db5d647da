"""Builders for tests (factory_boy). Writes that have rules go through the services."""

import factory

from accounts.models import User
from rooms.models import Membership, Room

PASSWORD = "correct-horse-battery-9"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    display_name = factory.LazyAttribute(lambda u: u.username.title())
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def saved(obj, create, extracted, **kwargs):
        if create:
            obj.save()


def make_room(*, owner: User | None = None, name: str | None = None, kind: str = "public") -> Room:
    from rooms.services import create_room

    name = name or f"room-{Room.objects.count() + 1}-{factory.Faker._get_faker().uuid4()[:6]}"
    return create_room(creator=owner, name=name, kind=kind)


def add_member(room: Room, user: User, role: str = Membership.Role.MEMBER) -> Membership:
    return Membership.objects.create(room=room, user=user, role=role, last_read_pos=room.pos)
