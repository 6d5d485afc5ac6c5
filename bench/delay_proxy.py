"""An engine as if it were far away: a unix socket that forwards to the
engine's, holding each burst of bytes from the client for one round trip
first (an HTTP request costs one round trip before the engine sees it, as
over a WAN link or an ssh session to another host). Nothing else changes:
the engine answers at its own speed, on this machine's cores.

    python3 bench/delay_proxy.py LISTEN_SOCKET ENGINE_SOCKET RTT_MS

Runs until killed.
"""
import os
import socket
import sys
import threading
import time

listen_path, engine_path, rtt = sys.argv[1], sys.argv[2], float(sys.argv[3]) / 1000


def pump(src, dst, delay):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if delay:
                time.sleep(delay)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(client):
    engine = socket.socket(socket.AF_UNIX)
    try:
        engine.connect(engine_path)
    except OSError:
        client.close()
        return
    threading.Thread(target=pump, args=(client, engine, rtt), daemon=True).start()
    threading.Thread(target=pump, args=(engine, client, 0), daemon=True).start()


if os.path.exists(listen_path):
    os.unlink(listen_path)
server = socket.socket(socket.AF_UNIX)
server.bind(listen_path)
server.listen(64)
while True:
    conn, _ = server.accept()
    serve(conn)
