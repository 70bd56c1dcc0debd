#include "proxy/relay/relay.h"

#include <uv.h>

namespace gatehouse {

Relay::Relay(uv_loop_t* loop, Stream& client, Stream& backend, RelayObserver& observer)
    : loop_(loop), observer_(observer), last_activity_ms_(uv_now(loop)) {
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
  std::string scratch;
  data = relay->observer_.rewrite(side, data, scratch);
  relay->observer_.onRelayBytes(side, data);
  if (!data.empty()) peer->write(data);
  if (!paused && peer->queuedBytes() > Stream::kHighWatermark) {
    paused = true;
    ++pauses;
    self->readStop();
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
