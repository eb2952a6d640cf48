#!/usr/bin/env python3
"""Build the labelled evaluation set for `agentdb eval` from real media available
offline: photographs bundled in scikit-image's wheel (installed by
`.ci/models.sh --testdata`), short text documents written here, and English speech
synthesised with espeak-ng (Debian package), and cards with printed text (signs,
labels, notices) drawn by FFmpeg, whose words only OCR can see. File names are neutral
(p01.png, s03.wav, t02.txt) so descriptive names cannot flatter the results; with
--descriptive-names they say what is in the file (the photo's own name, the topic of a
text or recording), which is what `agentdb eval --metadata both` separates from the
gain from content.

It also holds what a real folder holds besides photos, texts and recordings: short
videos (with and without speech; the pictures are FFmpeg's synthetic scenes, a photo
or a card, so what they say and show is known) and non-speech sounds (the freedesktop
sound theme, Debian package sound-theme-freedesktop). With --distractors it adds 30
unrelated multi-part sources (16 narrated videos, 14 long licence texts from
/usr/share/common-licenses) that no query is about: a fair ranking keeps them out of
the top five.

Every query has a "half": "tune" (defaults may be chosen on these) or "test" (held out;
report both), and a "level", easy or hard (see HARD below).

usage: make_dataset.py OUT_DIR [--descriptive-names] [--distractors]
Only the standard library and the `espeak-ng` and `ffmpeg` binaries are needed.
"""
import json, os, shutil, subprocess, sys

PHOTOS = os.path.join(os.environ.get("AGENTDB_TESTDATA", os.path.expanduser("~/.cache/agentdb/testdata")), "photos")

# photo file -> text queries describing it (in the words a user would type)
IMAGES = {
    "chelsea.png": ["a cat", "a tabby cat looking at the camera"],
    "coffee.png": ["a cup of coffee", "espresso on a saucer"],
    "rocket.jpg": ["a rocket on the launch pad", "space launch"],
    "motorcycle_left.png": ["a motorcycle", "a parked motorbike"],
    "astronaut.png": ["an astronaut in a space suit", "a woman in an orange spacesuit"],
    "horse.png": ["a horse", "silhouette of a horse"],
    "coins.png": ["old coins", "a collection of coins"],
    "moon.png": ["the surface of the moon", "lunar craters"],
    "camera.png": ["a photographer with a camera on a tripod", "a man holding a camera"],
    "hubble_deep_field.jpg": ["galaxies in deep space", "a telescope image of distant galaxies"],
    "page.png": ["a page of printed text", "a scanned book page"],
    "brick.png": ["a brick wall", "bricks"],
    "grass.png": ["grass", "a lawn seen from above"],
    "gravel.png": ["gravel", "small stones on the ground"],
    "retina.jpg": ["an image of the retina of an eye", "eye fundus photograph"],
    "chessboard_RGB.png": ["a chessboard pattern", "black and white squares"],
    "clock_motion.png": ["a clock", "a blurry wall clock"],
    "cell.png": ["a cell under a microscope", "microscopy of a cell"],
}
# query image -> relevant photo (natural pairs in the set)
IMAGE_QUERIES = {"motorcycle_right.png": "motorcycle_left.png", "chessboard_GRAY.png": "chessboard_RGB.png"}

TEXTS = [
    ("Sourdough bread needs a lively starter, a long cold fermentation and a very hot oven with steam for the crust.",
     ["how do I bake bread at home", "making a crusty loaf"]),
    ("The quarterly report shows revenue grew twelve percent, driven by cloud software subscriptions in Europe.",
     ["company earnings growth", "financial results for the quarter"]),
    ("Tomatoes grow best in full sun with regular watering; add compost to the soil before planting seedlings.",
     ["growing vegetables in the garden", "when to water tomato plants"]),
    ("The probe entered orbit around Jupiter after a five year journey and photographed its icy moons.",
     ["spacecraft exploring a giant planet", "mission to Jupiter"]),
    ("Replace the bicycle chain when it has stretched; clean and oil it every few hundred kilometres.",
     ["bike maintenance", "how to look after a bicycle chain"]),
    ("The symphony opens with a slow movement for strings before the brass section enters with the main theme.",
     ["classical music concert", "orchestra performance"]),
    ("Our new password policy requires a hardware key for administrators and rotates API tokens every ninety days.",
     ["security rules for logging in", "two factor authentication policy"]),
    ("Heavy rain and strong winds are expected tomorrow along the coast, with flooding possible near rivers.",
     ["weather forecast storm", "will it rain tomorrow"]),
]

# Cards with printed text: (name, lines, queries). Their pixels show nothing an
# ImageNet classifier knows; the words are the content.
CARDS = [
    ("closed-sign", ["CLOSED FOR RENOVATION", "Reopening on 3 March"], ["shop closed for renovation", "when does it reopen"]),
    ("platform-board", ["Platform 4", "Airport Express 10:42"], ["airport express departure platform"]),
    ("invoice", ["INVOICE 2291", "Harbour Street Bakery"], ["bakery invoice", "invoice 2291"]),
    ("wifi-card", ["Guest WiFi", "Password: blue-otter-77"], ["guest wifi password"]),
    ("allergy-label", ["Contains peanuts", "and tree nuts"], ["does this contain nuts", "peanut allergy warning"]),
    ("parking-notice", ["NO PARKING", "Fire exit keep clear"], ["no parking sign", "fire exit"]),
]
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

# Query levels (issue 18): a query is "easy" when it names what the file shows or says in
# the file's own words or its plain name ("a cat", "mission to Jupiter"), "hard" when it
# describes it without them ("lunar craters", "company earnings growth"). Spoken
# questions (audio→speech) are paraphrases: hard. Labelled by the wording alone.
HARD = {
    "espresso on a saucer", "space launch", "a woman in an orange spacesuit", "lunar craters",
    "a lawn seen from above", "small stones on the ground", "eye fundus photograph", "black and white squares",
    "making a crusty loaf", "company earnings growth", "growing vegetables in the garden",
    "spacecraft exploring a giant planet", "bike maintenance", "classical music concert", "orchestra performance",
    "security rules for logging in", "two factor authentication policy", "weather forecast storm",
    "sports result of the final", "a maths talk about infinitely detailed shapes",
    "rules about protective clothing at work", "what time does the gallery close", "did the patient break a bone",
    "cellular automaton simulation", "paper being crumpled in the bin", "a short chime when something is done",
}


def level(text):
    return "hard" if text in HARD else "easy"

# Topic names for --descriptive-names (texts and recordings, in list order).
TEXT_NAMES = ["sourdough-bread", "quarterly-report", "tomato-garden", "jupiter-probe", "bicycle-chain",
              "symphony-concert", "password-policy", "storm-forecast"]
SPEECH_NAMES = ["budget-meeting", "airport-train", "roast-chicken", "waterfall-trail", "football-final", "fever-advice"]

SPEECH = [
    ("Please remember to book the conference room for the budget meeting on Thursday morning.",
     ["scheduling a meeting about the budget"], "We need a room for Thursday's budget discussion."),
    ("The train to the airport leaves from platform four every twenty minutes.",
     ["when does the airport train leave"], "How often do trains go to the airport?"),
    ("Preheat the oven to two hundred degrees and roast the chicken for one hour.",
     ["cooking instructions for roast chicken"], "How long should I roast a chicken?"),
    ("The hiking trail to the waterfall is closed this week because of a landslide.",
     ["trail closed after landslide"], "Is the path to the waterfall open?"),
    ("Our football team won the championship final three goals to one.",
     ["sports result of the final"], "Who won the football championship?"),
    ("Drink plenty of water and get some rest if you have a fever.",
     ["advice for someone with a fever"], "What should I do when I have a high temperature?"),
]


SOUND_DIR = "/usr/share/sounds/freedesktop/stereo"
# freedesktop sound -> queries (what a user would type to find it)
SOUNDS = {
    "bell.oga": ["a bell ringing"],
    "phone-incoming-call.oga": ["a phone ringing", "incoming phone call ringtone"],
    "alarm-clock-elapsed.oga": ["an alarm clock going off"],
    "camera-shutter.oga": ["the click of a camera shutter"],
    "dialog-warning.oga": ["a warning beep"],
    "message-new-instant.oga": ["new message notification sound"],
    "trash-empty.oga": ["paper being crumpled in the bin"],
    "complete.oga": ["a short chime when something is done"],
}
SOUND_NAMES = {k: k.replace(".oga", "") for k in SOUNDS}

# Videos: (name, picture, narration or None, queries). Pictures: an FFmpeg lavfi source,
# "photo:FILE" (a slow zoom over a photo the image set does not use) or "card:TEXT".
VIDEOS = [
    ("fractal-lecture", "mandelbrot=s=640x360", "Welcome to this lecture on fractal geometry and the Mandelbrot set.",
     ["a lecture about fractals", "a maths talk about infinitely detailed shapes"]),
    ("warehouse-safety", "testsrc2=s=640x360",
     "This is the weekly safety briefing for warehouse staff: always wear a helmet and a high visibility vest.",
     ["warehouse safety briefing", "rules about protective clothing at work"]),
    ("museum-hours", "card:OPENING HOURS 9 - 17", "Our museum opens at nine and closes at five on weekdays.",
     ["museum opening hours", "what time does the gallery close"]),
    ("wrist-scan", "photo:phantom.png", "The scan shows no sign of a fracture in the patient's left wrist.",
     ["results of a wrist x-ray", "did the patient break a bone"]),
    ("colour-bars", "smptebars=s=640x360", None, ["television colour bars test pattern"]),
    ("game-of-life", "life=s=320x240:mold=10:ratio=0.1:seed=1:death_color=#C83232:life_color=#00ff00,scale=640:480",
     None, ["cellular automaton simulation"]),
]

# Distractor narrations (unrelated to every query).
DISTRACTOR_LINES = [
    "The committee will review the minutes of the previous session before voting on the amendments.",
    "Please keep your ticket until the end of your journey; inspectors may ask to see it.",
    "The annual general meeting of the allotment society is postponed until further notice.",
    "This recording explains how to reset the thermostat in the east wing of the building.",
    "Thank you for calling; all our advisers are busy, please hold the line.",
    "Chapter three describes the migration of the library catalogue to the new database.",
    "The choir rehearses on Tuesday evenings in the church hall next to the post office.",
    "Remember to return your library books before the end of the month to avoid a fine.",
    "The lecture on medieval tax records has moved to room two hundred and four.",
    "Our tenants' association collects the subscription fees in January each year.",
    "The printer on the second floor is out of toner; use the one near the kitchen.",
    "Parking permits for residents are renewed online or at the town hall.",
    "The harbour master announces the tide times every morning at seven.",
    "This is a reminder that the quarterly fire drill takes place on Friday.",
    "The translation of the user manual into Portuguese is now complete.",
    "Visitors must sign in at reception and wear a badge at all times.",
]
# Plain scenes: unrelated to every query (test patterns would not be: they show colour
# bars and a clock, which two queries ask for). Every random source has its seed or
# its colours fixed, so the dataset is the same file for file on every run (ffmpeg's
# `gradients` ignores `seed` unless its colours and points are given).
DISTRACTOR_SCENES = ["color=c=navy:s=640x360", "color=c=darkgreen:s=640x360", "color=c=gray:s=640x360",
                     "color=c=maroon:s=640x360", "gradients=s=640x360:speed=0.005:c0=0x3050a0:c1=0xd08040:n=2:x0=0:y0=0:x1=639:y1=359"]
LICENSES = "/usr/share/common-licenses"


def video(path, picture, narration, tmp, seconds=5):
    """A 5 s (or narration-long) 640x360 H.264 MP4 of `picture`, with `narration` spoken."""
    inputs, vf = [], "format=yuv420p"
    if picture.startswith("photo:"):
        inputs = ["-loop", "1", "-i", os.path.join(PHOTOS, picture[6:])]
        vf = "scale=640:360:force_original_aspect_ratio=increase,crop=640:360,zoompan=z='1+0.002*on':d=1:s=640x360,format=yuv420p"
    elif picture.startswith("card:"):
        text = picture[5:].replace(":", chr(92) + ":")
        inputs = ["-f", "lavfi", "-i", "color=white:s=640x360"]
        vf = f"drawtext=fontfile={FONT}:text='{text}':fontsize=48:x=40:y=150,format=yuv420p"
    else:
        inputs = ["-f", "lavfi", "-i", picture]
    audio = []
    if narration:
        wav = os.path.join(tmp, "narration.wav")
        espeak(narration, wav)
        audio = ["-i", wav]
    # A narrated video lasts as long as its narration (30 s at most); a silent one `seconds`.
    length = ["-t", "30"] if narration else []
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", *inputs, *audio, *length, "-vf", vf, "-r", "10",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    cmd += ["-c:a", "aac", "-shortest"] if narration else ["-t", str(seconds)]
    subprocess.run(cmd + ["-y", path], check=True)


def espeak(text, path, voice="en-us"):
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", path, text], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def card(lines, path):
    draws = ",".join(
        f"drawtext=fontfile={FONT}:text='{l.replace(':', chr(92) + ':')}':fontsize=56:x=40:y={40 + 90 * i}"
        for i, l in enumerate(lines))
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "color=white:s=960x280",
                    "-vf", draws, "-frames:v", "1", "-y", path], check=True)


def add_distractors(media, out):
    """The 30 unrelated multi-part sources, under media/other/."""
    ddir = os.path.join(media, "other")
    os.makedirs(ddir)
    for i, line in enumerate(DISTRACTOR_LINES, 1):
        scene = DISTRACTOR_SCENES[i % len(DISTRACTOR_SCENES)]
        video(os.path.join(ddir, f"d{i:02d}.mp4"), scene, line, out)
    docs = sorted(f for f in os.listdir(LICENSES) if not os.path.islink(os.path.join(LICENSES, f)))[:14]
    for i, doc in enumerate(docs, 1):
        shutil.copy(os.path.join(LICENSES, doc), os.path.join(ddir, f"l{i:02d}.txt"))


def write_queries(out, media, queries):
    """queries.jsonl, and a one-line summary."""
    with open(os.path.join(out, "queries.jsonl"), "w") as f:
        for q in queries:
            f.write(json.dumps(q, ensure_ascii=False) + "\n")
    kinds = {}
    for q in queries:
        kinds[q["kind"]] = kinds.get(q["kind"], 0) + 1
    files = sum(len(fs) for _, _, fs in os.walk(media))
    print(f"wrote {out}: {files} media files, {len(queries)} queries {kinds}")


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    descriptive = "--descriptive-names" in sys.argv
    distractors = "--distractors" in sys.argv
    out = args[0] if args else "eval-dataset"
    media, qdir = os.path.join(out, "media"), os.path.join(out, "queries")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(media)
    os.makedirs(qdir)
    queries = []
    if not os.path.isdir(PHOTOS):
        sys.exit(f"{PHOTOS} is missing: run `bash .ci/models.sh --testdata`")
    for i, (photo, texts) in enumerate(sorted(IMAGES.items()), 1):
        name = photo if descriptive else f"p{i:02d}{os.path.splitext(photo)[1]}"
        shutil.copy(os.path.join(PHOTOS, photo), os.path.join(media, name))
        for t in texts:
            queries.append({"kind": "text→image", "text": t, "level": level(t), "relevant": [f"media/{name}"],
                            "note": photo})
        for q, target in IMAGE_QUERIES.items():
            if target == photo:
                shutil.copy(os.path.join(PHOTOS, q), os.path.join(qdir, q))
                queries.append({"kind": "image→image", "image": f"queries/{q}", "level": "easy",
                                "relevant": [f"media/{name}"]})
    for i, (doc, texts) in enumerate(TEXTS, 1):
        name = f"{TEXT_NAMES[i - 1]}.txt" if descriptive else f"t{i:02d}.txt"
        with open(os.path.join(media, name), "w") as f:
            f.write(doc + "\n")
        for t in texts:
            queries.append({"kind": "text→text", "text": t, "level": level(t), "relevant": [f"media/{name}"]})
    have_espeak = shutil.which("espeak-ng") is not None
    if have_espeak:
        for i, (said, texts, spoken_query) in enumerate(SPEECH, 1):
            name = f"{SPEECH_NAMES[i - 1]}.wav" if descriptive else f"s{i:02d}.wav"
            espeak(said, os.path.join(media, name))
            for t in texts:
                queries.append({"kind": "text→speech", "text": t, "level": level(t), "relevant": [f"media/{name}"]})
            q = f"q{i:02d}.wav"
            espeak(spoken_query, os.path.join(qdir, q), voice="en-gb")
            queries.append({"kind": "audio→speech", "audio": f"queries/{q}", "level": "hard",
                            "relevant": [f"media/{name}"]})
    else:
        print("espeak-ng not found: the dataset has no speech (install it with .ci/setup.sh)", file=sys.stderr)
    if shutil.which("ffmpeg") and os.path.exists(FONT):
        for i, (cname, lines, texts) in enumerate(CARDS, 1):
            name = f"{cname}.png" if descriptive else f"c{i:02d}.png"
            card(lines, os.path.join(media, name))
            for t in texts:
                queries.append({"kind": "text→image+text", "text": t, "level": level(t),
                                "relevant": [f"media/{name}"]})
    else:
        print("ffmpeg or fonts-dejavu-core missing: the dataset has no text cards", file=sys.stderr)
    have_ffmpeg = shutil.which("ffmpeg") is not None
    if have_ffmpeg and have_espeak:
        for i, (vname, picture, narration, texts) in enumerate(VIDEOS, 1):
            name = f"{vname}.mp4" if descriptive else f"v{i:02d}.mp4"
            video(os.path.join(media, name), picture, narration, out)
            for t in texts:
                kind = "text→video" + ("+speech" if narration else "")
                queries.append({"kind": kind, "text": t, "level": level(t), "relevant": [f"media/{name}"]})
    else:
        print("ffmpeg or espeak-ng missing: the dataset has no videos", file=sys.stderr)
    if os.path.isdir(SOUND_DIR):
        for i, (sound, texts) in enumerate(sorted(SOUNDS.items()), 1):
            name = f"{SOUND_NAMES[sound]}.oga" if descriptive else f"a{i:02d}.oga"
            shutil.copy(os.path.join(SOUND_DIR, sound), os.path.join(media, name))
            for t in texts:
                queries.append({"kind": "text→sound", "text": t, "level": level(t), "relevant": [f"media/{name}"],
                            "note": sound})
    else:
        print(f"{SOUND_DIR} missing: the dataset has no sounds (install sound-theme-freedesktop)", file=sys.stderr)
    if distractors:
        add_distractors(media, out)
    # Halves: every other query of each kind is held out (the first one tunes).
    seen = {}
    for q in queries:
        n = seen.get(q["kind"], 0)
        q["half"] = "tune" if n % 2 == 0 else "test"
        seen[q["kind"]] = n + 1
    write_queries(out, media, queries)


if __name__ == "__main__":
    main()
