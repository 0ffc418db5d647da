"""Writes of rooms and memberships.

Membership changes, renames and archiving are stored `system` messages, so they take
room positions and reach clients through the same stream (and the same recovery) as chat.

Every write here that other users see spends the acting user's `WRITE_RATE_LIMIT`
(`check_write_rate`), the budget that edits, deletes and reactions (`messaging.changes`)
spend too: over REST, WebSocket and every process, one key per user. A refused write
raises `RateLimited` before anything is stored or sent (or inside the transaction, which
then stores and sends nothing).
"""

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from accounts.models import User
from chatproject import events, throttle
from chatproject.broadcast import broadcast_room_event
from chatproject.errors import ChatError, Forbidden, NotFound, ValidationFailed
from chatproject.text import clean_text

# Membership, name and archive changes are notices in the room's stream (see pyproject's
# import contracts); read markers point at messages' positions.
from messaging.models import Message
from messaging.stream import lock_room, post_notice
from rooms import selectors, userstream
from rooms.models import Membership, Room
from rooms.selectors import get_membership, get_visible_room

Role = Membership.Role
NAME_TAKEN = "A room with that name already exists."
# A user's own "joined" (or "left") notice in a room is stored at most once per this many
# seconds: joining and leaving over and over fills the stream with one pair, not hundreds.
MEMBERSHIP_NOTICE_EVERY = 300


def check_write_rate(*, user: User | None, cost: int = 1) -> None:
    """Spend `cost` of the user's WRITE_RATE_LIMIT (`chatproject.throttle.spend_writes`);
    raises RateLimited beyond it."""
    throttle.spend_writes(user, cost=cost)


def _membership_notice(*, room: Room, user: User, by: User | None, joined: bool) -> None:
    """The stored notice of a membership change (the caller holds the room lock). A user's
    own join or leave is stored at most once per MEMBERSHIP_NOTICE_EVERY seconds; a change
    made by someone else (an invitation, a removal) always is."""
    event = "member_joined" if joined else "member_left"
    if by is None or by.pk == user.pk:
        content = f"{user.shown_name} {'joined' if joined else 'left'} the room."
        key = f"notice:{room.pk}:{user.pk}:{event}"
        if not throttle.hit(key, limit=1, window=MEMBERSHIP_NOTICE_EVERY)[0]:
            return
    else:
        content = f"{by.shown_name} {'added' if joined else 'removed'} {user.shown_name}."
    post_notice(
        room=room,
        content=content,
        payload={"event": event, "user_id": user.pk, "by": by.pk if by else None},
    )


def clean_room_name(name: str, *, exclude_pk: int | None = None) -> str:
    """The name as it will be stored; raises ValidationFailed if blank or taken."""
    name = _clean_name(name)
    if _name_taken(name, exclude_pk=exclude_pk):
        raise ValidationFailed(NAME_TAKEN, fields={"name": [NAME_TAKEN]})
    return name


def _clean_name(name: str) -> str:
    name = " ".join(clean_text(name, field="name", max_length=80).split())
    if not name:
        raise ValidationFailed("A room needs a name.", fields={"name": ["This field is required."]})
    return name


def _unique_slug(name: str) -> str:
    base = slugify(name, allow_unicode=True)[:80] or "room"
    slug, n = base, 1
    while Room.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def _name_taken(name: str, *, exclude_pk: int | None = None) -> bool:
    rooms = Room.objects.filter(name__iexact=name).exclude(kind=Room.Kind.DIRECT)
    if exclude_pk is not None:
        rooms = rooms.exclude(pk=exclude_pk)
    return rooms.exists()


def create_room(
    *, creator: User | None, name: str, description: str = "", kind: str = Room.Kind.PUBLIC
) -> Room:
    """Create a public or private room; the creator becomes its owner."""
    if kind not in (Room.Kind.PUBLIC, Room.Kind.PRIVATE):
        raise ValidationFailed(
            "kind must be public or private (direct rooms come from /api/direct/).",
            fields={"kind": ["Must be public or private."]},
        )
    name = _clean_name(name)
    description = clean_text(description, field="description", max_length=500)
    if _name_taken(name):
        raise ValidationFailed(NAME_TAKEN, fields={"name": [NAME_TAKEN]})
    check_write_rate(user=creator)
    try:
        with transaction.atomic():
            room = Room.objects.create(
                name=name,
                slug=_unique_slug(name),
                description=description,
                kind=kind,
                created_by=creator,
            )
            if creator is not None:
                Membership.objects.create(room=room, user=creator, role=Role.OWNER)
    except IntegrityError:  # a concurrent create took the name (or slug) first
        raise ValidationFailed(NAME_TAKEN, fields={"name": [NAME_TAKEN]}) from None
    return room


def ensure_general_room(
    *, name: str | None = None, description: str = "Everyone's room."
) -> tuple[Room, bool]:
    """The General room, created on first call (idempotent). A public room that already
    has the name becomes General."""
    room = Room.objects.filter(is_general=True).first()
    if room is not None:
        return room, False
    name = name or settings.GENERAL_ROOM_NAME
    with transaction.atomic():
        existing = Room.objects.filter(name__iexact=name, kind=Room.Kind.PUBLIC).first()
        room = existing or create_room(creator=None, name=name, description=description)
        Room.objects.filter(pk=room.pk).update(is_general=True)
    room.refresh_from_db()
    return room, existing is None


def update_room(
    *,
    room: Room,
    actor: User,
    name: str | None = None,
    description: str | None = None,
    is_archived: bool | None = None,
) -> Room:
    """Rename, describe, archive or unarchive. The caller has checked that actor manages room."""
    who = actor.shown_name
    with transaction.atomic():
        locked = lock_room(room.pk)
        changed: list[str] = []
        if name is not None and locked.kind != Room.Kind.DIRECT:
            name = _clean_name(name)
            if name != locked.name:
                if locked.is_general:
                    raise Forbidden("The General room cannot be renamed.")
                if _name_taken(name, exclude_pk=locked.pk):
                    raise ValidationFailed(NAME_TAKEN, fields={"name": [NAME_TAKEN]})
                old, locked.name = locked.name, name
                changed.append("name")
                post_notice(
                    room=locked,
                    content=f"{who} renamed the room from {old} to {name}.",
                    payload={"event": "room_renamed", "user_id": actor.pk, "name": name},
                )
        if description is not None:
            description = clean_text(description, field="description", max_length=500)
            if description != locked.description:
                locked.description = description
                changed.append("description")
        if is_archived is not None and is_archived != locked.is_archived:
            if locked.is_general and is_archived:
                raise Forbidden("The General room cannot be archived.")
            locked.is_archived = is_archived
            changed.append("is_archived")
            verb = "archived" if is_archived else "unarchived"
            post_notice(
                room=locked,
                content=f"{who} {verb} the room.",
                payload={"event": f"room_{verb}", "user_id": actor.pk},
            )
        if changed:
            check_write_rate(user=actor)  # refused: the notices above are rolled back
            try:
                with transaction.atomic():
                    locked.save(update_fields=changed)
            except IntegrityError:
                raise ValidationFailed(NAME_TAKEN, fields={"name": [NAME_TAKEN]}) from None
            userstream.room_updated(locked)
    return locked


def delete_room(*, room: Room, actor: User) -> None:
    """Remove the room and its messages. The caller has checked that actor owns it (or staff)."""
    if room.is_general:
        raise Forbidden("The General room cannot be deleted.")
    check_write_rate(user=actor)
    with transaction.atomic():
        room_id = room.pk
        lock_room(room_id)  # no member joins meanwhile without being told
        member_ids = selectors.room_member_ids(room_id=room_id)
        room.delete()
        # Members learn it in their own stream; a socket only reading the room, from it.
        userstream.room_deleted(room_id=room_id, member_ids=member_ids)
        broadcast_room_event(room_id, events.room_deleted(room_id))


def join_room(*, room: Room, user: User) -> Membership:
    """Become a member of a public room (idempotent)."""
    if room.kind != Room.Kind.PUBLIC:
        raise Forbidden("Only public rooms can be joined; ask an admin of the room to invite you.")
    return _add_member(room=room, user=user, role=Role.MEMBER, by=None)


def _add_member(*, room: Room, user: User, role: str, by: User | None) -> Membership:
    with transaction.atomic():
        locked = lock_room(room.pk)
        if locked.is_archived:
            raise Forbidden("This room is archived and read-only.")
        membership = Membership.objects.filter(room=locked, user=user).first()
        if membership is not None:
            return membership
        check_write_rate(user=by or user)
        _membership_notice(room=locked, user=user, by=by, joined=True)
        # The user's open pages (an invitation, or a join on another device) learn of the
        # room at once, and a page that was away learns it from the user's stream.
        userstream.room_added(room_id=locked.pk, user_ids=[user.pk])
        # What was said before joining is not "unread" for the newcomer.
        return Membership.objects.create(
            room=locked, user=user, role=role, last_read_pos=locked.pos
        )


def leave_room(*, room: Room, user: User) -> None:
    """End a membership. The last owner of a room with other members must hand it on first."""
    if room.kind == Room.Kind.DIRECT:
        raise Forbidden("Direct rooms cannot be left.")
    _remove_member(room=room, user=user, by=None)


def _remove_member(*, room: Room, user: User, by: User | None) -> None:
    with transaction.atomic():
        locked = lock_room(room.pk)
        membership = Membership.objects.filter(room=locked, user=user).first()
        if membership is None:
            return
        if membership.role == Role.OWNER:
            owners = Membership.objects.filter(room=locked, role=Role.OWNER).count()
            others = Membership.objects.filter(room=locked).exclude(user=user).exists()
            if owners == 1 and others:
                raise Forbidden("The room's last owner must make someone else owner first.")
        check_write_rate(user=by or user)
        membership.delete()
        _membership_notice(room=locked, user=user, by=by, joined=False)
        # The user's open sockets stop receiving the room at once, on every process.
        userstream.room_removed(room_id=locked.pk, user_id=user.pk)


def set_member(*, room: Room, actor: User, user: User, role: str = Role.MEMBER) -> Membership:
    """Invite `user` (private or public room) or change their role.

    Admins invite members and admins, and change members' roles; only owners (and staff)
    make owners or change the role of an owner or of another admin (an admin may step
    down). The last owner cannot step down.
    """
    if room.kind == Room.Kind.DIRECT:
        raise Forbidden("Direct rooms have fixed members.")
    if role not in Role.values:
        raise ValidationFailed(f"Unknown role {role!r}.", fields={"role": ["Unknown role."]})
    actor_role = _role_of(room, actor)
    if role == Role.OWNER and actor_role != Role.OWNER and not actor.is_staff:
        raise Forbidden("Only an owner can make owners.")
    with transaction.atomic():
        membership = Membership.objects.filter(room=room, user=user).first()
        if membership is None:
            return _add_member(room=room, user=user, role=role, by=actor)
        if membership.role == role:
            return membership
        lock_room(room.pk)
        outranked = actor_role != Role.OWNER and not actor.is_staff
        if membership.role == Role.OWNER:
            if outranked:
                raise Forbidden("Only an owner can change an owner's role.")
            if Membership.objects.filter(room=room, role=Role.OWNER).count() == 1:
                raise Forbidden("The room's last owner must make someone else owner first.")
        elif membership.role == Role.ADMIN and outranked and user.pk != actor.pk:
            # Else an admin could demote another admin and then remove them.
            raise Forbidden("Only an owner can change another admin's role.")
        check_write_rate(user=actor)
        membership.role = role
        membership.save(update_fields=["role"])
        userstream.membership_changed(membership)
    return membership


def remove_member(*, room: Room, actor: User, user: User) -> None:
    """Remove a member. Admins remove members; owners (and staff) remove anyone."""
    if room.kind == Room.Kind.DIRECT:
        raise Forbidden("Direct rooms have fixed members.")
    target_role = _role_of(room, user)
    actor_role = _role_of(room, actor)
    if (
        target_role in (Role.OWNER, Role.ADMIN)
        and actor.pk != user.pk
        and actor_role != Role.OWNER
        and not actor.is_staff
    ):
        raise Forbidden("Only an owner can remove an owner or an admin.")
    _remove_member(room=room, user=user, by=actor)


def _role_of(room: Room, user: User) -> str | None:
    return Membership.objects.filter(room=room, user=user).values_list("role", flat=True).first()


def enter_room(*, room_id: object, user: User) -> Room:
    """The room a socket may subscribe to.

    Visible rooms only (404 otherwise). Entering a public room makes the user a member,
    unless it is archived (then it is readable, not joinable).
    """
    room = get_visible_room(room_id=room_id, user=user)
    if _joined_on_entry(room) and get_membership(room=room, user=user) is None:
        join_room(room=room, user=user)
    return room


def _joined_on_entry(room: Room) -> bool:
    """Entering the room makes a non-member a member: a public room, not archived."""
    return room.kind == Room.Kind.PUBLIC and not room.is_archived


def enter_rooms(*, room_ids: list[int], user: User) -> tuple[list[Room], dict[int, ChatError]]:
    """`enter_room` for many rooms at once (a socket's batched `join`): the rooms the
    user may subscribe to, in the order asked, and why each other one was refused. Two
    queries however many rooms, plus a join per public room the user is not in yet."""
    found = Room.objects.in_bulk(room_ids)
    member_of = set(
        Membership.objects.filter(user=user, room_id__in=found).values_list("room_id", flat=True)
    )
    entered: list[Room] = []
    refused: dict[int, ChatError] = {}
    for room_id in room_ids:
        room = found.get(room_id)
        member = room_id in member_of
        if room is None or not selectors.can_see(room=room, user=user, member=member):
            refused[room_id] = selectors.RoomNotFound()
            continue
        if _joined_on_entry(room) and not member:
            try:
                join_room(room=room, user=user)
            except ChatError as exc:
                refused[room_id] = exc
                continue
        entered.append(room)
    return entered, refused


def get_or_create_direct_room(*, user: User, other: User) -> tuple[Room, bool]:
    """The one direct room of two users (a user may also write to themself).

    A unique key per pair, enforced by the database, makes concurrent calls agree.
    """
    low, high = sorted((user.pk, other.pk))
    key = f"{low}:{high}"
    room = Room.objects.filter(direct_key=key).first()
    if room is not None:
        return room, False
    names = " & ".join(sorted({user.username, other.username}))
    # The room appears in the other user's sidebar too: one change for it, one per member.
    check_write_rate(user=user, cost=1 if other.pk == user.pk else 2)
    try:
        with transaction.atomic():
            room = Room.objects.create(
                name=names[:80],
                # A public room may already hold this slug (anyone can name a room so).
                slug=_unique_slug(f"direct-{low}-{high}"),
                kind=Room.Kind.DIRECT,
                created_by=user,
                direct_key=key,
            )
            members = {user.pk: user, other.pk: other}
            for member in members.values():
                Membership.objects.create(room=room, user=member, role=Role.MEMBER)
            userstream.room_added(room_id=room.pk, user_ids=members)
    except IntegrityError:  # the other call won
        return Room.objects.get(direct_key=key), False
    return room, True


def mark_read(*, room: Room, user: User, message_id: object) -> Membership:
    """Move the user's read marker to a message of the room (never backwards)."""
    membership = Membership.objects.filter(room=room, user=user).first()
    if membership is None:
        raise Forbidden("Only members have read markers.")
    seq = _seq_of(room=room, message_id=message_id)
    with transaction.atomic():
        moved = Membership.objects.filter(pk=membership.pk, last_read_pos__lt=seq).update(
            last_read_pos=seq
        )
        membership.refresh_from_db(fields=["last_read_pos"])
        if moved:  # the user's other tabs and devices clear the room too
            userstream.room_read(membership)
    return membership


def set_muted(*, room: Room, user: User, muted: bool) -> Membership:
    """Mute or unmute a room for one member (SPEC 11): a muted room shows no unread badge
    and notifies on mentions only. The user's other tabs and devices learn it from the
    user's stream. Setting what is already set changes nothing."""
    with transaction.atomic():
        try:
            membership = Membership.objects.select_for_update().get(room=room, user=user)
        except Membership.DoesNotExist:
            raise Forbidden("Only members can mute a room.") from None
        if membership.muted != muted:
            check_write_rate(user=user)
            membership.muted = muted
            membership.save(update_fields=["muted"])
            userstream.membership_changed(membership)
    return membership


def _seq_of(*, room: Room, message_id: object) -> int:
    try:
        found = Message.objects.filter(room=room, pk=int(message_id))  # type: ignore[call-overload]
        seq = found.values_list("seq", flat=True).first()
    except (TypeError, ValueError, OverflowError):
        seq = None
    if seq is None:
        raise NotFound("No such message.")
    return seq
