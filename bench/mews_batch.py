"""The request body every benchmark posts: a Mews General webhook batch of 21
events of the documented kinds, about 2 KB (compact JSON), the same bytes in
scripts/bench-ingest, scripts/bench-delivery and scripts/bench-peers.
scripts/bench-json also asks for a large one: the same events, more of them.

    python3 bench/mews_batch.py PATH [EVENTS=21]   writes it to PATH, prints its size
"""
import json
import sys
import uuid


def write_body(path, count=21):
    kinds = ["ServiceOrderUpdated", "ResourceUpdated", "MessageAdded", "CustomerAdded", "CustomerUpdated",
             "ReservationUpdated", "CompanyAdded"]
    events = [{"Discriminator": kinds[i % len(kinds)], "Value": {"Id": str(uuid.UUID(int=0xa5 << 64 | i))}}
              for i in range(count)]
    body = {"EnterpriseId": "851df8c8-90f2-4c4a-8e01-a4fc46b25178",
            "IntegrationId": "c8bee838-7fb1-4f4e-8fac-ac87008b2f90", "Events": events}
    text = json.dumps(body)
    with open(path, "w") as f:
        f.write(text)
    return len(text)


if __name__ == "__main__":
    print(write_body(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 21))
