"""Wake-ups, the event relay, the replay log and control messages, behind one interface."""

from app.broker.base import Broker, Event, Subscription

__all__ = ["Broker", "Event", "Subscription", "create_broker"]


def create_broker(redis_uri: str | None, *, prefix: str, maxlen: int, ttl: int) -> Broker:
    if redis_uri:
        from app.broker.redis import RedisBroker

        return RedisBroker(redis_uri, prefix=prefix, maxlen=maxlen, ttl=ttl)
    from app.broker.memory import MemoryBroker

    return MemoryBroker(maxlen=maxlen)
