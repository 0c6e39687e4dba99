#!/usr/bin/env python3
"""chat.py -- an interactive chat over stdin that streams the model's replies.

    python3 examples/python/chat.py [--model MODEL.gguf] [--system TEXT] [--temp 0.7] [--max-tokens 256]

The model defaults to the project's own models/emberfall.gguf (a village
innkeeper answers). Each line you type becomes a turn. When the model has a
chat template (and Jinja2 is installed) the conversation is rendered with it,
and only the new part of each rendering is sent: the session keeps its KV
cache across turns. Otherwise a turn is "User: ...\\nAssistant:". The reply
streams as it is generated and ends at the end of the turn, EOS or
--max-tokens. Ctrl-C stops a reply (the conversation goes on); Ctrl-D or
/quit leaves; /reset forgets the conversation. Runs from the repository
(finds bindings/python and build/libember.so) or with emberlm installed.
"""
import argparse
import sys
from pathlib import Path

try:
    import emberlm
except ImportError:  # running from the repository without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bindings" / "python"))
    import emberlm


def main() -> int:
    ap = argparse.ArgumentParser(description="Chat with a GGUF model through emberlm.")
    default_model = Path(__file__).resolve().parents[2] / "models" / "emberfall.gguf"
    ap.add_argument("--model", "-m", default=str(default_model), help="path to a GGUF model (default: emberfall)")
    ap.add_argument("--threads", "-t", type=int, default=0, help="threads (0 = automatic)")
    ap.add_argument("--ctx", "-c", type=int, default=0, help="context length (0 = the model's, at most 4096)")
    ap.add_argument("--temp", type=float, default=0.7, help="temperature (0 = greedy)")
    ap.add_argument("--seed", type=int, default=None, help="sampler seed")
    ap.add_argument("--max-tokens", "-n", type=int, default=256, help="tokens per reply at most")
    ap.add_argument("--system", default=None,
                    help="the text the conversation starts with (a persona); a default suits the model")
    args = ap.parse_args()

    try:
        model = emberlm.Model(args.model, n_threads=args.threads)
    except emberlm.EmberError as e:
        print(f"chat: cannot load {args.model}: {e}", file=sys.stderr)
        return 1
    with model:
        info = model.info
        print(f"{info.name or info.architecture}: {info.n_params / 1e6:.1f}M parameters, "
              f"{info.n_ctx_train}-token context, kernels {info.kernels}. /quit to leave, /reset to start over.",
              file=sys.stderr)
        templated = bool(info.chat_template)
        if templated:
            try:
                model.apply_chat_template([{"role": "user", "content": "hello"}])
            except emberlm.EmberError:
                templated = False  # no Jinja2 here, or a template it cannot render
        system = args.system
        if system is None:
            system = ("Innkeeper: I am Greta. I keep the inn at the crossroads, and I am kind."
                      if info.name == "emberfall" else "A conversation between a curious user and a helpful assistant.")
        messages = [{"role": "system", "content": system}]
        sent = ""  # the text the session holds so far (templated mode)
        with model.session(n_ctx=args.ctx, temperature=args.temp, seed=args.seed) as session:
            first = True
            while True:
                try:
                    line = input("\nyou> ").strip()
                except (EOFError, KeyboardInterrupt):
                    print()
                    return 0
                if not line:
                    continue
                if line in ("/quit", "/exit"):
                    return 0
                if line == "/reset":
                    session.reset()
                    first, sent = True, ""
                    del messages[1:]
                    continue
                if templated:
                    messages.append({"role": "user", "content": line})
                    full = model.apply_chat_template(messages)
                    if not full.startswith(sent):  # the template re-rendered history: start over
                        session.reset()
                        sent = ""
                    turn, sent = full[len(sent):], full
                    stop = ["\n"] if info.name == "emberfall" else []
                else:
                    turn = (system + "\n" if first else "") + f"User: {line}\nAssistant:"
                    stop = ["\nUser:"]
                first = False
                print("bot>", end="", flush=True)
                text, finish = "", None
                try:
                    with session.generate(turn, max_tokens=args.max_tokens, stop=stop, stream=True,
                                          special=templated) as reply:
                        for piece in reply:
                            text += piece
                            print(piece, end="", flush=True)
                        finish = reply.metrics.finish_reason if reply.metrics else None
                except KeyboardInterrupt:
                    print(" [stopped]", end="")
                except emberlm.ContextFullError:
                    print("\n[the context is full: /reset to start over]", end="")
                if templated:
                    messages.append({"role": "assistant", "content": text.strip()})
                    # the token that held the stop string stays in the session
                    # (emberfall's newline is a token of its own)
                    sent += text + (stop[0] if finish == "stop" and stop else "")
                m = session.metrics
                print(f"\n  ({m.n_generated_tokens} tokens, TTFT {m.ttft_ms:.0f} ms, "
                      f"{m.decode_tokens_per_s:.1f} tok/s)", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
