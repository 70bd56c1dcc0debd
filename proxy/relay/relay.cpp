#include "proxy/relay/relay.h"

#include <uv.h>

namespace gatehouse {

Relay::Relay(uv_loop_t* loop, Stream& client, Stream& backend, RelayObserver& observer,
             uint64_t splice_min)
    : loop_(loop), observer_(observer), last_activity_ms_(uv_now(loop)), splice_min_(splice_min) {
  client_ = Side{};
  client_.relay = this;
  client_.side = RelaySide::Client;
  client_.self = &client;
  client_.peer = &backend;
  client_.peer_side = &backend_;
  backend_.relay = this;
  backend_.side = RelaySide::Backend;
  backend_.self = &backend;
  backend_.peer = &client;
  backend_.peer_side = &client_;
  if (splice_min_ > 0) {
    client_.self_tcp = dynamic_cast<TcpStream*>(&client);
    backend_.self_tcp = dynamic_cast<TcpStream*>(&backend);
  }
}

Relay::~Relay() {
  detach();
}

void Relay::start() {
  client_.self->setHandler(&client_);
  backend_.self->setHandler(&backend_);
  client_.self->readStart();
  backend_.self->readStart();
}

void Relay::detach() {
  pump_.reset();
  client_.self->setHandler(nullptr);
  backend_.self->setHandler(nullptr);
}

void Relay::passEnd(RelaySide side) {
  Side& from = side == RelaySide::Client ? client_ : backend_;
  from.peer->shutdownWrite();
}

void Relay::inject(RelaySide from, std::string_view data) {
  (from == RelaySide::Client ? client_ : backend_).onRead(data);
}

void Relay::injectEnd(RelaySide from) {
  (from == RelaySide::Client ? client_ : backend_).onEnd();
}

void Relay::Side::onRead(std::string_view data) {
  bytes += data.size();
  relay->last_activity_ms_ = uv_now(relay->loop_);
  if (!relay->observer_.mayForward(side, data)) return;  // the relay may be detached by now
  relay->observer_.onRelayBytes(side, data);
  peer->write(data);
  if (!paused && peer->queuedBytes() > Stream::kHighWatermark) {
    paused = true;
    ++pauses;
    self->readStop();
    return;
  }
  relay->maybeSplice(*this);
}

void Relay::maybeSplice(Side& from) {
  // Spliced bytes must follow everything written before them, so the peer's queue must be empty.
  if (pump_ || from.self_tcp == nullptr || from.peer_side->self_tcp == nullptr ||
      from.peer->queuedBytes() != 0) {
    return;
  }
  const uint64_t opaque = observer_.opaqueBytesAhead(from.side);
  if (opaque < splice_min_) return;
  pump_ = SplicePump::start(loop_, *from.self_tcp, *from.peer_side->self_tcp, opaque, *this);
  if (pump_) pump_from_ = &from;
}

void Relay::onPumped(uint64_t n) {
  pump_from_->bytes += n;
  spliced_ += n;
  last_activity_ms_ = uv_now(loop_);
  observer_.onRelayOpaque(pump_from_->side, n);
}

void Relay::onPumpDone() {
  pump_.reset();  // `from` reads into user space again, under the same handler
}

void Relay::onPumpFailed(SplicePump::Failure failure, std::string_view reason) {
  Side& from = *pump_from_;
  pump_.reset();
  // As a stream reports an end or an error: once, and with its reading stopped.
  switch (failure) {
    case SplicePump::Failure::SourceEnded:
      from.self->readStop();
      from.onEnd();
      return;
    case SplicePump::Failure::SourceFailed:
      from.self->readStop();
      from.onError(reason);
      return;
    case SplicePump::Failure::DestinationFailed:
      from.peer->readStop();
      from.peer_side->onError(reason);
      return;
  }
}

void Relay::Side::onWritable() {
  // This side's queue drained: the side feeding it may read again.
  Side* feeder = peer_side;
  if (feeder->paused && !feeder->ended) {
    feeder->paused = false;
    feeder->self->readStart();
  }
}

void Relay::Side::onEnd() {
  ended = true;
  relay->observer_.onRelayEnded(side, false, {});
}

void Relay::Side::onError(std::string_view reason) {
  ended = true;
  relay->observer_.onRelayEnded(side, true, reason);
}

}  // namespace gatehouse
