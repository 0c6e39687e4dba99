#!/usr/bin/env python3
"""chat.py -- an interactive chat over stdin that streams the model's replies.

    python3 examples/python/chat.py --model MODEL.gguf [--temp 0.7] [--max-tokens 256]

Each line you type becomes a turn ("User: ...\\nAssistant:"); the reply
streams as it is generated and ends at the next "User:" turn, EOS or
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
    ap.add_argument("--model", "-m", required=True, help="path to a GGUF model")
    ap.add_argument("--threads", "-t", type=int, default=0, help="threads (0 = automatic)")
    ap.add_argument("--ctx", "-c", type=int, default=0, help="context length (0 = the model's, at most 4096)")
    ap.add_argument("--temp", type=float, default=0.7, help="temperature (0 = greedy)")
    ap.add_argument("--seed", type=int, default=None, help="sampler seed")
    ap.add_argument("--max-tokens", "-n", type=int, default=256, help="tokens per reply at most")
    ap.add_argument("--system", default="A conversation between a curious user and a helpful assistant.",
                    help="the text the conversation starts with")
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
                    first = True
                    continue
                turn = (args.system + "\n" if first else "") + f"User: {line}\nAssistant:"
                first = False
                print("bot>", end="", flush=True)
                try:
                    with session.generate(turn, max_tokens=args.max_tokens, stop=["\nUser:"], stream=True) as reply:
                        for piece in reply:
                            print(piece, end="", flush=True)
                except KeyboardInterrupt:
                    print(" [stopped]", end="")
                except emberlm.ContextFullError:
                    print("\n[the context is full: /reset to start over]", end="")
                m = session.metrics
                print(f"\n  ({m.n_generated_tokens} tokens, TTFT {m.ttft_ms:.0f} ms, "
                      f"{m.decode_tokens_per_s:.1f} tok/s)", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
