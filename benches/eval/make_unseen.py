#!/usr/bin/env python3
"""Build a held-out evaluation set of the same composition as make_dataset.py's, from
media no default was tuned on: Debian's tuxpaint-stamps-default (cut-out photographs and
drawings of animals, food, tools and instruments, and sound effects; installed by
`bash .ci/models.sh --unseen`), new texts, new espeak-ng speech, new cards and new
videos. The queries below were written before any of this media went through AgentDB,
from the stamps' names only, and were not changed after seeing results.

Every query is labelled "easy" (the plain name: "a peacock", "a cow mooing") or "hard"
(a description without the name: "a bird with a huge fan of colourful tail feathers"),
and its "half" is "unseen". File names are neutral (u01.png, ...). With --distractors the
same 30 unrelated multi-part sources as make_dataset.py's are added.

usage: make_unseen.py OUT_DIR [--distractors]
Needs the `espeak-ng` and `ffmpeg` binaries (as make_dataset.py does).
"""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_dataset as base  # noqa: E402

STAMPS = os.path.join(os.environ.get("AGENTDB_TESTDATA", os.path.expanduser("~/.cache/agentdb/testdata")),
                      "tuxpaint", "stamps")

# picture -> (easy query, hard query)
PICTURES = {
    "animals/birds/peacock.png": ("a peacock", "a bird with a huge fan of colourful tail feathers"),
    "animals/birds/pink_flamingo.png": ("a flamingo", "a pink wading bird standing on long legs"),
    "animals/birds/pelican.png": ("a pelican", "a seabird with a big pouch under its beak"),
    "animals/fish/clownfish.png": ("a clownfish", "an orange and white striped reef fish"),
    "animals/fish/seahorse.png": ("a seahorse", "a tiny sea creature shaped like a horse's head"),
    "animals/fish/lobster.png": ("a lobster", "a red shellfish with big claws"),
    "animals/insects/mantis.png": ("a praying mantis", "a green insect with folded front legs"),
    "animals/insects/cartoon/ladybug.png": ("a ladybird", "a red beetle with black spots"),
    "animals/mammals/elephant.png": ("an elephant", "a large grey animal with a trunk and tusks"),
    "animals/mammals/giraffe.png": ("a giraffe", "the tallest animal, with a very long neck"),
    "animals/mammals/hedgehog.png": ("a hedgehog", "a small spiny animal"),
    "animals/mammals/rhino_black.png": ("a rhinoceros", "a heavy animal with a horn on its nose"),
    "animals/mammals/aquatic/orca.png": ("a killer whale", "a black and white ocean predator"),
    "animals/mammals/bears/cartoon/teddy_bear.png": ("a teddy bear", "a soft toy for children"),
    "animals/marsupials/kangaroo.png": ("a kangaroo", "an Australian animal that hops"),
    "animals/mammals/equines/zebra.png": ("a zebra", "a striped wild horse from Africa"),
    "food/pizza.png": ("a pizza", "an Italian dish with cheese and tomato on a round base"),
    "food/fruit/banana.png": ("a banana", "a long yellow fruit"),
    "food/fruit/pineapple.png": ("a pineapple", "a tropical fruit with spiky leaves on top"),
    "food/vegetables/broccoli.png": ("broccoli", "a green vegetable that looks like a little tree"),
    "food/vegetables/mushroom.png": ("a mushroom", "a fungus with a cap and a stem"),
    "food/vegetables/corn.png": ("an ear of corn", "a cob of sweetcorn"),
    "hobbies/binoculars.png": ("binoculars", "something to look at birds far away"),
    "hobbies/music/brass/trumpet.png": ("a trumpet", "a brass instrument"),
    "hobbies/music/string/guitar_electric.png": ("an electric guitar", "an instrument a rock band plays"),
    "household/dishes/teapot.png": ("a teapot", "something to brew tea in"),
    "household/tools/wrench_adjustable.png": ("an adjustable wrench", "a tool for tightening nuts and bolts"),
    "household/Lightbulb.png": ("a light bulb", "a lamp that screws into a socket"),
    "medical/stethoscope.png": ("a stethoscope", "what a doctor uses to listen to your heart"),
    "household/key.png": ("a key", "something to unlock a door"),
}
# query picture -> the picture above it should find
PICTURE_QUERIES = {
    "animals/mammals/bears/toys/edward_bear.png": "animals/mammals/bears/cartoon/teddy_bear.png",
    "food/fruit/cartoon/banana.png": "food/fruit/banana.png",
    "food/fruit/cartoon/pineapple.png": "food/fruit/pineapple.png",
    "hobbies/music/string/guitar_electric_bass.png": "hobbies/music/string/guitar_electric.png",
}

# sound effect -> (easy, hard)
SOUNDS = {
    "animals/mammals/bovines/cow.ogg": ("a cow mooing", "cattle in a field"),
    "animals/birds/rooster.ogg": ("a rooster crowing", "a farmyard bird waking everyone at dawn"),
    "animals/amphibians/frog.ogg": ("a frog croaking", "noises from a pond at night"),
    "animals/birds/owl.ogg": ("an owl hooting", "a night bird calling in the woods"),
    "animals/insects/bee.ogg": ("bees buzzing", "the hum of insects"),
    "animals/mammals/bovines/sheep.ogg": ("a sheep bleating", "a lamb calling for its mother"),
    "hobbies/music/percussion/cymbal_crash.ogg": ("a cymbal crash", "a loud metallic hit from a drummer"),
    "hobbies/music/string/violin.ogg": ("a violin playing", "a stringed instrument played with a bow"),
    "household/vacuum_cleaner.ogg": ("a vacuum cleaner", "someone cleaning the carpet"),
    "household/toilet.ogg": ("a toilet flushing", "water rushing in the bathroom"),
    "household/tools/hammer.ogg": ("hammering", "someone knocking nails into wood"),
    "vehicles/emergency/firetruck.ogg": ("a fire engine siren", "an emergency vehicle racing past"),
}
# query recording -> the sound above it should find (another recording of the same animal)
SOUND_QUERIES = {
    "animals/mammals/bovines/cow_white.ogg": "animals/mammals/bovines/cow.ogg",
    "animals/mammals/bovines/sheep_lamb.ogg": "animals/mammals/bovines/sheep.ogg",
}

TEXTS = [
    ("Our cafe now offers oat milk and almond milk at no extra charge for all hot drinks.",
     ("plant milk options at the cafe", "can I get a latte without dairy")),
    ("The museum's new exhibition shows Roman coins, pottery and jewellery found near the river.",
     ("Roman exhibition at the museum", "ancient artefacts on display")),
    ("To reset your router, hold the button on the back for ten seconds until the lights flash.",
     ("how to reset the router", "my internet box is not working")),
    ("The marathon starts at nine in the morning; runners should collect their numbers the day before.",
     ("marathon start time", "long distance running race")),
    ("Volunteers are needed to plant trees in the park this Saturday; gloves and tools are provided.",
     ("tree planting volunteers", "helping out in the community at the weekend")),
    ("Electric scooters must not be ridden on the pavement and are limited to twenty kilometres per hour.",
     ("electric scooter rules", "speed limit for e-scooters")),
    ("The dentist recommends brushing twice a day and replacing your toothbrush every three months.",
     ("dental care advice", "how often to change a toothbrush")),
    ("The library will extend its opening hours during the exam period until midnight.",
     ("library opening hours during exams", "somewhere to study late")),
]

# (said, (easy, hard), spoken question)
SPEECH = [
    ("The swimming pool will be closed on Monday for cleaning and will reopen on Tuesday at eight.",
     ("the swimming pool is closed on Monday", "when can I swim again"), "Can I go swimming on Monday?"),
    ("Please bring your passport and two photographs to the embassy for your visa appointment.",
     ("passport and photographs for the visa appointment", "documents needed to travel abroad"),
     "What should I take to the embassy?"),
    ("The recipe needs three eggs, a cup of flour and half a cup of sugar, mixed until smooth.",
     ("recipe with eggs flour and sugar", "ingredients for baking a cake"), "How many eggs do I need?"),
    ("Tonight's concert has been moved from the park to the town hall because of the rain.",
     ("concert moved to the town hall", "event venue changed because of the weather"),
     "Where is the concert tonight?"),
    ("Your parcel was delivered to your neighbour at number twelve this afternoon.",
     ("parcel delivered to the neighbour", "where did my package go"), "Where is my package?"),
    ("Turn left at the second traffic light, then the library is on your right.",
     ("directions to the library", "how do I find the books building"), "How do I get to the library?"),
]

# (lines, (easy, hard))
CARDS = [
    (["LOST CAT", "Grey tabby, answers to Milo"], ("lost cat Milo", "missing pet poster")),
    (["HALF PRICE SALE", "All winter coats"], ("winter coats on sale", "clothes shop discount")),
    (["WET FLOOR", "Caution"], ("wet floor warning", "slippery surface sign")),
    (["Room 12", "Staff meeting 15:30"], ("staff meeting in room 12", "what time is the meeting")),
]

# (picture stamp or lavfi scene, sound stamp or narration, (easy, hard))
VIDEOS = [
    ("animals/mammals/dogs/dog.png", "sound:animals/mammals/dogs/dog.ogg", ("a dog barking", "a noisy pet")),
    ("seasonal/newyears/fireworks.png", "sound:seasonal/newyears/fireworks.ogg",
     ("fireworks", "a new year celebration")),
    ("naturalforces/lightningbolt.png", "sound:naturalforces/lightningbolt.ogg",
     ("a thunderstorm", "lightning and bad weather")),
    ("food/fruit/strawberry.png", "Strawberries are ready to pick in June; bring a basket to the farm.",
     ("strawberry picking at the farm", "fruit harvest in early summer")),
    ("cellauto=s=640x360:rule=110:seed=3", "This tutorial shows how to change a flat tyre on a bicycle in five minutes.",
     ("how to fix a flat bike tyre", "repairing a puncture")),
    ("card:CITY TOUR", "Welcome to the city bus tour; our first stop is the old cathedral.",
     ("city bus tour", "a sightseeing trip")),
]


def stamp_video(path, picture, audio, tmp):
    """A 5 s 640x360 H.264/AAC MP4: a slow zoom over a stamp (or a lavfi scene, or a card)
    with a sound effect, or narrated by espeak-ng (then as long as the narration)."""
    if picture.startswith("card:"):
        text = picture[5:]
        inputs = ["-f", "lavfi", "-i", "color=white:s=640x360"]
        vf = f"drawtext=fontfile={base.FONT}:text='{text}':fontsize=48:x=40:y=150,format=yuv420p"
    elif "=" in picture:
        inputs, vf = ["-f", "lavfi", "-i", picture], "format=yuv420p"
    else:
        inputs = ["-loop", "1", "-i", os.path.join(STAMPS, picture)]
        # Over white (the stamps are cut-outs), padded to 16:9, slowly zoomed.
        vf = ("format=rgba,split[f1][f2];[f1]drawbox=t=fill:c=white,format=rgb24[bg];[bg][f2]overlay=format=auto,"
              "pad=ceil(iw*16/9/2)*2:ih:(ow-iw)/2:0:white,scale=640:360,"
              "zoompan=z='1+0.002*on':d=1:s=640x360,format=yuv420p")
    if audio.startswith("sound:"):
        sound = ["-i", os.path.join(STAMPS, audio[6:])]
        length = ["-t", "5"]
    else:
        wav = os.path.join(tmp, "narration.wav")
        base.espeak(audio, wav)
        sound, length = ["-i", wav], ["-shortest"]
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", *inputs, *sound, "-filter_complex", f"[0:v]{vf}", "-r", "10",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", *length, "-y", path]
    subprocess.run(cmd, check=True)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    distractors = "--distractors" in sys.argv
    out = args[0] if args else "eval-unseen"
    if not os.path.isdir(STAMPS):
        sys.exit(f"{STAMPS} is missing: run `bash .ci/models.sh --unseen`")
    for tool in ("espeak-ng", "ffmpeg"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found (install it with .ci/setup.sh)")
    media, qdir = os.path.join(out, "media"), os.path.join(out, "queries")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(media)
    os.makedirs(qdir)
    queries = []

    def add(kind, level, relevant, **q):
        queries.append({"kind": kind, "level": level, "half": "unseen", "relevant": [f"media/{relevant}"], **q})

    names = {}
    for i, (pic, (easy, hard)) in enumerate(PICTURES.items(), 1):
        names[pic] = f"u{i:02d}.png"
        shutil.copy(os.path.join(STAMPS, pic), os.path.join(media, names[pic]))
        add("text→image", "easy", names[pic], text=easy, note=pic)
        add("text→image", "hard", names[pic], text=hard, note=pic)
    for i, (q, target) in enumerate(PICTURE_QUERIES.items(), 1):
        shutil.copy(os.path.join(STAMPS, q), os.path.join(qdir, f"pq{i:02d}.png"))
        add("image→image", "easy", names[target], image=f"queries/pq{i:02d}.png", note=q)
    for i, (sound, (easy, hard)) in enumerate(SOUNDS.items(), 1):
        names[sound] = f"b{i:02d}.ogg"
        shutil.copy(os.path.join(STAMPS, sound), os.path.join(media, names[sound]))
        add("text→sound", "easy", names[sound], text=easy, note=sound)
        add("text→sound", "hard", names[sound], text=hard, note=sound)
    for i, (q, target) in enumerate(SOUND_QUERIES.items(), 1):
        shutil.copy(os.path.join(STAMPS, q), os.path.join(qdir, f"bq{i:02d}.ogg"))
        add("audio→sound", "easy", names[target], audio=f"queries/bq{i:02d}.ogg", note=q)
    for i, (doc, (easy, hard)) in enumerate(TEXTS, 1):
        name = f"n{i:02d}.txt"
        with open(os.path.join(media, name), "w") as f:
            f.write(doc + "\n")
        add("text→text", "easy", name, text=easy)
        add("text→text", "hard", name, text=hard)
    for i, (said, (easy, hard), spoken) in enumerate(SPEECH, 1):
        name = f"r{i:02d}.wav"
        base.espeak(said, os.path.join(media, name))
        add("text→speech", "easy", name, text=easy)
        add("text→speech", "hard", name, text=hard)
        base.espeak(spoken, os.path.join(qdir, f"rq{i:02d}.wav"), voice="en-gb")
        add("audio→speech", "hard", name, audio=f"queries/rq{i:02d}.wav")
    for i, (lines, (easy, hard)) in enumerate(CARDS, 1):
        name = f"k{i:02d}.png"
        base.card(lines, os.path.join(media, name))
        add("text→image+text", "easy", name, text=easy)
        add("text→image+text", "hard", name, text=hard)
    for i, (picture, audio, (easy, hard)) in enumerate(VIDEOS, 1):
        name = f"w{i:02d}.mp4"
        stamp_video(os.path.join(media, name), picture, audio, out)
        kind = "text→video" + ("" if audio.startswith("sound:") else "+speech")
        add(kind, "easy", name, text=easy)
        add(kind, "hard", name, text=hard)
    if distractors:
        base.add_distractors(media, out)
    if os.path.exists(os.path.join(out, "narration.wav")):
        os.remove(os.path.join(out, "narration.wav"))
    base.write_queries(out, media, queries)

if __name__ == "__main__":
    main()
