#!/usr/bin/python3
"""Generates the village-dialogue corpus the default model is trained on.

Everything here is the project's own text (MIT, like the rest of emberlm): a
seeded, templated grammar of in-character dialogue in a game village —
personas, greetings, trade and haggling, rumours, directions, quests, services
and farewells — between the player and the villagers (guard, merchant, smith,
innkeeper, farmer, healer, baker, hunter, elder, priest, miller, fisher, bard,
stablehand, villager), and between villagers.

A scene is a few lines, each "Speaker: words", optionally opened by a line of
lore about the village and by the villager introducing itself (the persona
line the NPC examples prefill). Scenes are separated by one blank line.
The same seed gives the same bytes.

    gen_corpus.py --out DIR [--scenes N] [--val-scenes N] [--seed S]

writes DIR/train.txt and DIR/val.txt (the held-out split: scenes drawn from
the same grammar after the training scenes, never seen in training).
"""
import argparse
import os
import random
import re

# ---------------------------------------------------------------------------
# The grammar engine. A template is text with
#   {name}        a slot: a scene binding if bound, else a random rule expansion
#   {a|b|c}       one of the alternatives, each expanded in turn
#   [text]        text or nothing, half and half
# Expansion recurses; rules are lists of templates.
# ---------------------------------------------------------------------------


class Grammar:
    def __init__(self, rng, rules):
        self.rng = rng
        self.rules = rules
        self.bind = {}

    def _match(self, s, i, open_c, close_c):
        depth = 0
        for j in range(i, len(s)):
            if s[j] == open_c:
                depth += 1
            elif s[j] == close_c:
                depth -= 1
                if depth == 0:
                    return j
        raise ValueError("unbalanced template: " + s)

    def _split_top(self, s):
        parts, depth, cur = [], 0, []
        for c in s:
            if c in "{[":
                depth += 1
            elif c in "}]":
                depth -= 1
            if c == "|" and depth == 0:
                parts.append("".join(cur))
                cur = []
            else:
                cur.append(c)
        parts.append("".join(cur))
        return parts

    def x(self, s):
        out, i = [], 0
        while i < len(s):
            c = s[i]
            if c == "{":
                j = self._match(s, i, "{", "}")
                body = s[i + 1:j]
                alts = self._split_top(body)
                if len(alts) > 1:
                    out.append(self.x(self.rng.choice(alts)))
                elif body in self.bind:
                    out.append(self.bind[body])
                elif body in self.rules:
                    out.append(self.x(self.rng.choice(self.rules[body])))
                else:
                    raise KeyError("no rule for {%s}" % body)
                i = j + 1
            elif c == "[":
                j = self._match(s, i, "[", "]")
                if self.rng.random() < 0.5:
                    out.append(self.x(s[i + 1:j]))
                i = j + 1
            else:
                out.append(c)
                i += 1
        return "".join(out)


def tidy(s):
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r" ([,.!?;:])", r"\1", s)
    s = re.sub(r"([.!?]){2,}", r"\1", s)
    s = re.sub(r",([.!?])", r"\1", s)
    # capital letter at the start of every sentence
    s = re.sub(r"(^|[.!?] )([a-z])", lambda m: m.group(1) + m.group(2).upper(), s)
    return s


# ---------------------------------------------------------------------------
# The world
# ---------------------------------------------------------------------------

NUMBERS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
           "fifteen", "twenty", "thirty"]
NUM_VALUE = {w: v for v, w in enumerate(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                                        "nine", "ten", "eleven", "twelve"])}
NUM_VALUE.update({"fifteen": 15, "twenty": 20, "thirty": 30})

VILLAGES = ["Emberfall", "Emberfall", "Emberfall", "Oakridge", "Millbrook", "Stonewick", "Ashford", "Thornbury",
            "Greyhaven", "Willowmere"]
NEIGHBOURS = ["Oakridge", "Millbrook", "Stonewick", "Ashford", "Thornbury", "Greyhaven", "Willowmere", "Redwater",
              "Highcliff", "the capital"]

PLACES = {
    # place: list of direction phrases
    "market": ["in the square at the heart of the village", "down the main street, where the stalls are",
               "past the well, under the striped awnings"],
    "inn": ["by the well, with the fox on its sign", "at the crossroads, next to the stables",
            "on the main street; follow the smell of stew"],
    "smithy": ["by the east gate; follow the sound of the hammer", "down the lane past the bakery",
               "near the river, where the smoke rises"],
    "well": ["in the middle of the square", "right behind the market stalls", "at the end of this street"],
    "chapel": ["up the hill, beyond the graveyard", "at the north end of the village",
               "past the elder's house, with the bell tower"],
    "mill": ["down by the river, past the old bridge", "where the stream turns the big wheel",
             "on the south road, half a mile out"],
    "bakery": ["on the corner by the market", "next to the smithy, the door with the bread sign",
               "behind the inn, you will smell it first"],
    "gate": ["at the end of the main road", "straight ahead, past the guard post", "to the north, by the watchtower"],
    "old bridge": ["south of the mill", "where the road crosses the river", "down the lane past the stables"],
    "stables": ["behind the inn", "near the west gate", "next to the hay barn on the village road"],
    "watchtower": ["on the hill above the north gate", "beside the gate; you can see it from here",
                   "up the stone steps by the wall"],
    "healer's hut": ["at the edge of the forest", "past the chapel, with herbs at the door",
                     "down the path by the duck pond"],
    "elder's house": ["the big house facing the square", "up the hill near the chapel",
                      "beside the old oak in the square"],
    "docks": ["down at the lake shore", "at the bottom of the river road", "past the fish market by the water"],
    "graveyard": ["behind the chapel", "on the hill to the north", "beyond the old stone wall"],
    "old mine": ["up the mountain road, an hour's walk", "in the hills to the east",
                 "past the quarry, where the road ends"],
    "forest": ["beyond the west fields", "just past the mill", "across the river to the south"],
    "farm": ["on the south road, past the fields", "over the hill to the east", "by the apple orchard"],
}
PLACE_NAMES = list(PLACES)

ROLES = ["Guard", "Merchant", "Smith", "Innkeeper", "Farmer", "Healer", "Baker", "Hunter", "Elder", "Priest",
         "Miller", "Fisher", "Bard", "Stablehand", "Villager"]
ROLE_WEIGHTS = [12, 12, 10, 12, 6, 6, 5, 5, 6, 4, 4, 4, 4, 3, 7]
ROLE_NOUN = {"Guard": "guard", "Merchant": "merchant", "Smith": "smith", "Innkeeper": "innkeeper",
             "Farmer": "farmer", "Healer": "healer", "Baker": "baker", "Hunter": "hunter", "Elder": "elder",
             "Priest": "priest", "Miller": "miller", "Fisher": "fisher", "Bard": "bard",
             "Stablehand": "stablehand", "Villager": "villager"}
ROLE_PLACE = {"Guard": "gate", "Merchant": "market", "Smith": "smithy", "Innkeeper": "inn", "Farmer": "farm",
              "Healer": "healer's hut", "Baker": "bakery", "Hunter": "forest", "Elder": "elder's house",
              "Priest": "chapel", "Miller": "mill", "Fisher": "docks", "Bard": "inn", "Stablehand": "stables",
              "Villager": "market"}

NAMES = ["Mara", "Tomas", "Bren", "Elda", "Garrick", "Ilse", "Osric", "Wenna", "Rolf", "Hilde", "Aldo", "Petra",
         "Corin", "Marta", "Finn", "Greta", "Bertram", "Nell", "Edwin", "Rosa", "Hugo", "Lise", "Anselm", "Dora",
         "Jory", "Tilda", "Magnus", "Ada", "Wulf", "Sabine", "Otto", "Freya"]

# What each role sells: (item with article, plain item, base price in copper)
STOCK = {
    "Merchant": ["a lamp", "a coil of rope", "a bolt of cloth", "a bag of salt", "a jar of spice", "a tin kettle",
                 "a wool blanket", "a pair of boots", "a leather satchel", "a bar of soap", "a map of the valley",
                 "a box of candles", "a copper pot", "a sewing kit", "a flint and steel"],
    "Smith": ["a sword", "a dagger", "an axe", "a horseshoe", "a set of nails", "a helmet", "a shield",
              "an iron pot", "a hammer", "a spear", "a pair of tongs", "a chain shirt", "a shovel", "a lock and key"],
    "Baker": ["a loaf of bread", "a honey cake", "a meat pie", "a bag of rolls", "an apple tart", "a seed cake",
              "a cheese pastry", "a sweet bun"],
    "Innkeeper": ["a mug of ale", "a bowl of stew", "a cup of cider", "a plate of roast pork", "a room for the night",
                  "a hot bath", "a bottle of wine", "a plate of bread and cheese"],
    "Healer": ["a healing potion", "a pot of salve", "a bundle of herbs", "a roll of bandages", "a sleeping draught",
               "a jar of honey balm", "a cure for fever", "a tonic for the cough"],
    "Farmer": ["a basket of apples", "a sack of turnips", "a dozen eggs", "a wheel of cheese", "a jug of milk",
               "a sack of oats", "a bunch of carrots"],
    "Fisher": ["a string of trout", "a smoked eel", "a basket of perch", "a fishing line", "a fine salmon"],
    "Hunter": ["a deer hide", "a bundle of arrows", "a short bow", "a rabbit pelt", "a haunch of venison",
               "a wolf fur cloak"],
    "Miller": ["a sack of flour", "a bag of barley", "a sack of rye flour", "a bag of bran"],
    "Stablehand": ["a bag of oats for your horse", "a new saddle", "a bridle", "a fresh horseshoe",
                   "a night in the stable for your horse"],
}
SELLERS = list(STOCK)

LOOT = ["a wolf pelt", "an old silver ring", "a rusty sword", "a bundle of herbs", "a strange blue stone",
        "a bear claw", "a pouch of old coins", "a carved wooden idol", "a torn map", "a bandit's dagger",
        "a jar of wild honey", "a pair of antlers"]

TRAITS = ["stern but fair", "cheerful", "grumpy", "kind", "honest", "shrewd", "patient", "curious", "tired",
          "proud of my work", "quiet", "loud", "careful", "generous", "suspicious of strangers", "old and wise",
          "young and eager", "a little nervous", "fond of a good joke", "always busy"]

MOODS = {
    # trait -> greeting style
    "gruff": ["grumpy", "stern but fair", "suspicious of strangers", "tired", "quiet"],
    "warm": ["cheerful", "kind", "generous", "fond of a good joke", "young and eager", "loud"],
    "plain": ["honest", "shrewd", "patient", "curious", "proud of my work", "careful", "old and wise",
              "a little nervous", "always busy"],
}
MOOD_OF = {t: m for m, ts in MOODS.items() for t in ts}

RULES = {
    "addr": ["traveller", "stranger", "friend", "traveller", "young one", "adventurer", "wanderer", "my friend"],
    "time": ["morning", "evening", "afternoon", "day"],
    "weather": ["The sun is warm today", "It looks like rain", "The wind is cold from the mountains",
                "A fine clear sky", "Fog on the river again", "The snow will come early this year",
                "It has rained for three days", "A good day for the harvest"],
    "coin": ["copper", "silver"],
    "neighbour": NEIGHBOURS,
    "number": NUMBERS,
    "loot": LOOT,
    "beast": ["wolves", "bears", "goblins", "giant rats", "wild boars", "bandits", "wild dogs", "trolls",
              "spiders the size of cats", "wyverns", "skeletons", "river trolls"],
    "lair": ["the old mine", "the forest", "the hills to the east", "the caves by the river", "the ruined tower",
             "the marsh", "the old quarry", "the dark woods"],
    "missing": ["a child", "a lamb", "the miller's cart", "a merchant from {neighbour}", "my brother",
                "a shipment of iron", "the chapel bell", "three sheep", "the elder's ring", "a letter from the capital"],
    "colour": ["grey", "red", "black", "green", "blue", "white"],
    "stranger": ["a stranger in a {colour} cloak", "a tall man with a scar", "a woman with a raven on her shoulder",
                 "two riders from {neighbour}", "an old pilgrim", "a tinker with a cart full of clocks",
                 "a knight without a banner", "a hooded traveller"],
    "rumour": [
        "{beast} were seen near {lair}",
        "{stranger} came through the gate last night and asked about the {place}",
        "the well water tasted of iron this week, and the healer is worried",
        "bandits stopped a wagon on the road to {neighbour}",
        "lights burn in the ruined tower at night, though nobody lives there",
        "the miller found {loot} in the river",
        "the price of salt went up again because the road to {neighbour} is closed",
        "{stranger} paid for a room with gold and never left it",
        "the old mine is open again, and the miners heard singing down in the dark",
        "the elder's cat has not come home for three days",
        "a dragon was seen over the mountains, though I think it was only a big crow",
        "the harvest will be poor this year because of the dry summer",
        "the smith is making a sword for someone important",
        "the bard owes money to half the village",
        "a ghost walks the graveyard when the moon is full",
        "the lord's tax collector will come before winter",
        "the river rose in the night and took part of the old bridge",
        "{beast} took two sheep from the farm by the orchard",
        "a merchant from {neighbour} sells cheap cloth that falls apart in the rain",
        "the priest rang the bell at midnight and will not say why",
        "there is treasure buried under the old oak in the square",
        "the innkeeper waters the ale on market days",
        "a caravan from {neighbour} is due any day now",
        "the baker is to marry the stablehand in the spring",
        "soldiers were seen on the mountain road, marching north",
        "the hunter found strange tracks in the snow, too big for any wolf",
        "someone stole {number} chickens from the farm last night",
        "the fish have left the lake, and the fishers blame the cold",
    ],
    "rumour_open": ["They say", "I heard", "Word is that", "Folk are saying", "Rumour has it that",
                    "A traveller told me", "Between you and me,", "Only yesterday I heard that"],
    "rumour_close": ["", "", "Strange times.", "Make of that what you will.", "But you did not hear it from me.",
                     "I would keep my eyes open if I were you.", "Who knows what is true these days?",
                     "The whole village is talking about it.", "Mind how you go."],
    "no_rumour": ["Nothing much. The days are quiet here, and I like it that way.",
                  "Not a thing. Ask the innkeeper, she hears everything.",
                  "Only that the bread was late this morning.",
                  "Quiet as a graveyard. Well, quieter than ours."],
    "quest_problem": [
        "{beast} have been coming down from {lair}",
        "{missing} went missing on the road to {neighbour}",
        "someone has been stealing from the market at night",
        "the road to {neighbour} is blocked by a fallen tree",
        "my delivery to {neighbour} is late and I cannot leave the village",
        "the chapel roof leaks and we need slate from the old quarry",
        "the healer needs moonflowers that only grow by the marsh",
        "a letter must reach the captain at {neighbour} before the week is out",
        "{beast} have made a nest in {lair}",
        "my old sword was lost in the river near the mill",
    ],
    "quest_ask": ["Could you deal with it?", "Will you help us?", "Could you look into it?",
                  "Would you go and see?", "I need someone brave to take care of it.",
                  "Could you bring it back?", "Find out what is going on, will you?"],
    "reward": ["I will pay you {number} silver", "there are {number} silver coins in it for you",
               "the village will reward you well", "I can give you {number} silver and a hot meal",
               "you will have my thanks and {number} silver", "you can keep whatever you find"],
    "accept": ["I'll do it.", "Consider it done.", "I will help.", "You can count on me.", "Leave it to me.",
               "All right, I'll go.", "I accept."],
    "decline": ["Not today, sorry.", "I have other business.", "Find someone else.", "Maybe later.",
                "That sounds too dangerous for me."],
    "accept_reply": ["Thank you, {addr}. Be careful out there.", "Good. Come back when it is done.",
                     "I knew I could trust you. Take the road past the {place}.",
                     "Bless you. Bring a torch, it is dark in there.", "Then go with my thanks, and hurry."],
    "decline_reply": ["Suit yourself.", "I understand. Come back if you change your mind.",
                      "Pity. The offer stands if you change your mind.", "Then I will ask the guard again.",
                      "Fair enough. Not everyone is a hero."],
    "greet_player": ["Hello!", "Good {time}!", "Good {time}.", "Hail, friend.", "Hi there.", "Well met.",
                     "Greetings.", "Hello there.", "Good {time} to you.", "Hey!"],
    "greet_extra": ["", "", "How are you today?", "How goes it?", "Fine weather, isn't it?", "Busy day?",
                    "I just arrived from {neighbour}.", "I am new in town.", "Nice village you have here."],
    "greet_gruff": ["What do you want?", "Hmph. Good {time}.", "Hmph.", "Make it quick, I am busy.", "Another stranger.",
                    "State your business.", "Yes? What is it?", "Good {time}. Don't cause trouble."],
    "greet_warm": ["Good {time}, {addr}! Welcome to {village}!", "Hello, hello! Come in, come in!",
                   "Well met, {addr}! What a fine {time}.", "Ah, a new face! Welcome!",
                   "Good {time} to you! Lovely to see you.", "Hello, {addr}! Come closer, don't be shy."],
    "short_greet": ["Good {time}.", "Hello, {addr}.", "Ah, welcome.", "Well met.", "Good {time}, {addr}.",
                    "Hmph.", "Hello there.", "Greetings."],
    "greet_plain": ["Good {time}, {addr}.", "Hello. Welcome to {village}.", "Good {time}. What can I do for you?",
                    "Greetings, {addr}. How can I help?", "Hello, {addr}. Need something?", "Good {time} to you."],
    "ask_news": ["What news from the road?", "Heard any rumours?", "Anything strange happening lately?",
                 "What is the talk of the village?", "Any news?", "What is new in {village}?",
                 "Have you heard anything interesting?", "Tell me the latest gossip."],
    "ask_way": ["Where {is} the {target}?", "How do I get to the {target}?", "Can you point me to the {target}?",
                "Which way to the {target}?", "I am looking for the {target}.", "{Is} the {target} far from here?",
                "Do you know where the {target} {is}?"],
    "way_open": ["The {target}?", "The {target} {is} easy to find.", "Ah, the {target}.", "", "",
                 "You want the {target}?"],
    "way_close": ["", "", "You can't miss it.", "Tell them I sent you.", "Mind the mud on the way.",
                  "It is not far.", "Be quick, it closes at sundown.", "Ask again if you get lost."],
    "ask_who": ["Who are you?", "What is your name?", "What do you do here?", "Tell me about yourself.",
                "And who might you be?", "Have we met before?"],
    "ask_village": ["Tell me about {village}.", "What kind of place is this?", "Is this a safe village?",
                    "What is there to see here?", "How long have you lived here?"],
    "ask_sale": ["What do you have for sale?", "What do you sell?", "Show me your wares.",
                 "What do you have today?", "Can I buy something?", "Anything good for sale?",
                 "What are you selling?"],
    "sale_open": ["Take a look.", "Only the best.", "Have a look at this.", "Today I have",
                  "For you, {addr}, I have", "Plenty."],
    "ask_price": ["How much for the {item}?", "What does the {item} cost?", "How much is the {item}?",
                  "What is the price of the {item}?", "And the {item}? How much?", "I like the {item}. How much?"],
    "price_sweet": ["", "", "A fair price.", "It is worth every coin.", "You will not find better in {neighbour}.",
                    "That is my best price.", "Good quality, I promise you."],
    "haggle": ["That is too much. Would you take {offer}?", "How about {offer}?", "I can only pay {offer}.",
               "Come now, {offer} and we have a deal.", "Too dear. {Offer} is all I have."],
    "haggle_yes": ["Fine, {offer} it is. You drive a hard bargain.", "Oh, all right. {Offer}, for you.",
                   "Deal. But don't tell the others.", "Agreed. {Offer}, and we shake on it."],
    "haggle_no": ["{Offer}? No, no. {price} and not a copper less.", "I have children to feed. {price}, or nothing.",
                  "Ha! For {offer} you can have the box it came in.", "No. The price is {price}."],
    "buy": ["I'll take it.", "Deal.", "I'll buy it.", "Here is the money.", "Sold. I'll take the {item}.",
            "Good, I'll take the {item}."],
    "buy_reply": ["Here you are. Use it well.", "Thank you kindly. Come again!", "A fine choice, {addr}.",
                  "Pleasure doing business.", "There you go. Mind it does not break.",
                  "Here is your {item}. Enjoy it."],
    "sell_ask": ["Would you buy {loot}?", "I have {loot}. Are you interested?", "What will you give me for {loot}?",
                 "I found {loot}. Want it?"],
    "sell_yes": ["Let me see. I will give you {price} for it.", "Hmm, not bad. {price}, no more.",
                 "I can use that. {price}?", "Fine work. I will pay {price}."],
    "sell_no": ["No, I have no use for that.", "Try the merchant at the market.", "That is junk, {addr}.",
                "Keep it. Nobody here will buy that."],
    "bye_player": ["Goodbye.", "Farewell.", "I must be going.", "Thank you, goodbye.", "See you later.",
                   "Thanks for your help.", "Take care.", "Until next time."],
    "bye_npc": ["Safe travels, {addr}.", "Farewell, and mind the road.", "Come back soon!", "Goodbye, {addr}.",
                "Take care of yourself.", "May the road be kind to you.", "Off you go, then.",
                "Good luck out there.", "Don't be a stranger."],
    "thanks": ["Thank you.", "Thanks.", "That is kind of you.", "Much obliged.", "I owe you one."],
    "thanks_reply": ["You are welcome.", "Think nothing of it.", "Any time, {addr}.", "Glad to help.",
                     "It is nothing."],
    "weather_q": ["How is the weather today?", "What do you make of this weather?", "Will it rain, do you think?"],
    "weather_a": ["{weather}. Good for some, bad for others.", "{weather}. I have seen worse.",
                  "{weather}. My knee always knows before the sky does."],
    "opinion": ["{Role2}? A good sort. Honest as the day is long.", "{Role2}? Don't get me started.",
                "{Role2}? We grew up together. I trust them with my life.",
                "{Role2}? Keeps to themselves, mostly.", "{Role2} owes me {number} copper, that's what I think.",
                "{Role2}? The best in the valley, I'll say that.", "{Role2}? Talks too much, if you ask me."],
    "ask_opinion": ["What do you think of the {role2}?", "Do you know the {role2}?", "Is the {role2} a good sort?",
                    "Tell me about the {role2}."],
    "lore": [
        "The village of {village} lies in a green valley below the old mountain road.",
        "{village} is a small village by the river, with a market, an inn and a smithy.",
        "Travellers come to {village} for the market, the inn and the smithy.",
        "The village of {village} sits at the crossroads, a day's walk from {neighbour}.",
        "In {village} the guard watches the gate and the roads, and the bell rings at sundown.",
        "The village of {village} lies in a green valley below the old mountain road. Travellers come for the "
        "market, the inn and the smithy. The guard watches the gate and the roads.",
        "Snow lies on the hills around {village}, and the villagers gather at the inn in the evening.",
        "It is market day in {village}, and the square is full of stalls and noise.",
        "Night falls over {village}. Lanterns burn at the gate and the inn is full.",
        "Spring has come to {village}. The fields are green and the river is high.",
        "The road to {neighbour} runs past {village}, and many travellers stop at the inn.",
        "{village} is an old village of stone houses, with a chapel on the hill and a mill on the river.",
    ],
}

# Role-specific text: duties (first person), and lines for their trade.
DUTY = {
    "Guard": ["I keep the gate of {village}", "I watch the roads and the walls", "I keep the peace in {village}",
              "I stand watch at the gate from dawn to dusk", "I guard the village and its people"],
    "Merchant": ["I sell cloth, spice and lamps at the market", "I trade goods from {neighbour} at the market",
                 "I run the biggest stall in the market", "I buy and sell anything worth a coin",
                 "I bring goods over the mountain road to {village}"],
    "Smith": ["I forge swords and horseshoes at the smithy", "I work the forge by the east gate",
              "I make tools, blades and nails", "I mend armour and shoe horses", "I keep the fire of the smithy burning"],
    "Innkeeper": ["I keep the inn by the well", "I run the inn and pour the ale", "I keep the Sleeping Fox inn",
                  "I cook, clean and keep the rooms at the inn", "I keep the inn at the crossroads"],
    "Farmer": ["I grow barley and turnips south of the village", "I keep sheep and a few cows",
               "I work the fields by the river", "I grow apples in the orchard on the hill"],
    "Healer": ["I tend the sick and the wounded", "I make potions and salves from herbs",
               "I heal the hurt of this village", "I gather herbs by the forest and brew remedies"],
    "Baker": ["I bake the bread for the whole village", "I make bread, pies and honey cakes",
              "I am up before the sun to bake", "I keep the bakery by the market"],
    "Hunter": ["I hunt deer and boar in the forest", "I track beasts in the hills",
               "I sell hides and meat at the market", "I know every path in the forest"],
    "Elder": ["I am the elder of {village}", "I have led this village for thirty years",
              "I keep the old stories of {village}", "I settle quarrels and give advice"],
    "Priest": ["I keep the chapel on the hill", "I ring the bell and say the prayers",
               "I care for the souls of {village}", "I tend the chapel and the graveyard"],
    "Miller": ["I grind the grain at the mill", "I run the mill on the river", "I make the flour for the baker"],
    "Fisher": ["I fish the lake and the river", "I sell fish at the docks", "I mend nets and catch trout"],
    "Bard": ["I sing songs at the inn", "I play the lute and tell stories", "I travel the valley with my songs",
             "I know a song for every occasion"],
    "Stablehand": ["I look after the horses at the stables", "I feed and brush the horses",
                   "I keep the stables behind the inn"],
    "Villager": ["I live in {village} with my family", "I have lived here all my life",
                 "I help at the market now and then", "I mind my own business, mostly"],
}

ROLE_LINES = {
    "Guard": {
        "ask": ["Can I pass through the gate?", "Is the road to {neighbour} safe?", "Are there bandits about?",
                "When does the gate close?", "Out of my way.", "I am looking for trouble.", "Is there a curfew?"],
        "reply": {
            "Can I pass through the gate?": ["You may pass, but keep your weapon sheathed.",
                                              "State your name and business first.",
                                              "Yes. The gate is open until sundown."],
            "Is the road to {neighbour} safe?": ["Safe enough by day. At night, {beast} roam the hills.",
                                                 "No. Bandits were seen on it two days ago.",
                                                 "Safer than it was. We sent a patrol last week."],
            "Are there bandits about?": ["A few in the hills. Stay on the road and you will be fine.",
                                         "Not since we hanged the last ones.",
                                         "Always. That is why I am here."],
            "When does the gate close?": ["At sundown. After that you wait outside until dawn.",
                                          "When the bell rings. Don't be late.",
                                          "At dusk, and it opens again at first light."],
            "Out of my way.": ["Watch your tongue, {addr}. I have put better men than you in the stocks.",
                               "Careful. One more word like that and you sleep in a cell.",
                               "I'll pretend I didn't hear that."],
            "I am looking for trouble.": ["Then you found it. Move along, before I lose my patience.",
                                          "Not in this village. Keep walking.",
                                          "Trouble finds those who look for it. Go home."],
            "Is there a curfew?": ["Yes. Nobody on the streets after the midnight bell.",
                                   "Only on festival nights. Too much ale, too many fights.",
                                   "No, but the gate stays shut at night."],
        },
    },
    "Smith": {
        "ask": ["Can you fix my {gear}?", "Can you sharpen my {gear}?", "Could you make me a {gear}?",
                "Do you need any iron?", "Hot work, isn't it?"],
        "reply": {
            "Can you fix my {gear}?": ["Let me see it. Yes, I can fix it by tomorrow for {price}.",
                                       "That is badly bent. Give me two days and {price}.",
                                       "Easy work. Come back after lunch, and bring {price}."],
            "Can you sharpen my {gear}?": ["Leave it here. It will be sharp enough to shave with by noon.",
                                           "Of course. {price}, and it will cut like new.",
                                           "Sharpen it? It needs more than that, but I will do what I can."],
            "Could you make me a {gear}?": ["A new one? That will take a week and cost {price}.",
                                            "I can, if you bring me the iron.",
                                            "I have one almost finished. {price} and it is yours."],
            "Do you need any iron?": ["Always. The mine sends less every month.",
                                      "Bring me iron ore and I will pay a good price.",
                                      "Not today. My store is full."],
            "Hot work, isn't it?": ["Hot and hard, but honest.", "You get used to it. The fire is my friend.",
                                    "Hotter in summer. Now, did you want something?"],
        },
    },
    "Innkeeper": {
        "ask": ["Do you have a room?", "What is there to eat?", "A mug of ale, please.", "Is the bard playing tonight?",
                "Can I leave my horse here?"],
        "reply": {
            "Do you have a room?": ["One left, up the stairs. {price} for the night, breakfast included.",
                                    "Yes, a warm one by the chimney. {price} a night.",
                                    "Sorry, we are full. Try the farm on the south road."],
            "What is there to eat?": ["Stew with bread, roast pork, or cheese and apples.",
                                      "The stew is fresh today. Rabbit and turnip.",
                                      "Fish pie, if you are quick. The bard eats everything."],
            "A mug of ale, please.": ["Here you are. That is {price}.", "Coming right up. Best ale in the valley.",
                                      "One ale. Mind, it is strong."],
            "Is the bard playing tonight?": ["If he is sober, yes.", "Every night, whether we like it or not.",
                                             "Tonight and tomorrow. Get a seat early."],
            "Can I leave my horse here?": ["The stablehand will look after it for a copper or two.",
                                           "Yes, the stables are out back.",
                                           "Of course. Tell the stablehand I sent you."],
        },
    },
    "Healer": {
        "ask": ["I am wounded.", "Can you help me? I feel sick.", "What is good for a fever?",
                "Do you have something for pain?"],
        "reply": {
            "I am wounded.": ["Sit down and let me see. Hold still, this will sting.",
                              "That is a deep cut. I will clean it and bind it.",
                              "Lie down here. You are lucky it missed the bone."],
            "Can you help me? I feel sick.": ["Drink this and rest. You will feel better by morning.",
                                              "Let me see your tongue. Hmm, a chill. Stay warm and drink tea.",
                                              "Too much of the innkeeper's ale, I think."],
            "What is good for a fever?": ["Willow bark tea, and plenty of rest.", "Cold cloths and a tonic. {price}.",
                                          "Sleep, water and my green tonic."],
            "Do you have something for pain?": ["This salve will help. Rub it in twice a day.",
                                                "Poppy tea, but only a little. {price}.",
                                                "Yes, but first tell me where it hurts."],
        },
    },
    "Elder": {
        "ask": ["Tell me the history of this village.", "Do you need my help?", "What should I know about {village}?"],
        "reply": {
            "Tell me the history of this village.": [
                "{village} was founded by miners two hundred years ago. When the mine closed, we became farmers.",
                "Long ago a dragon burned this valley. We rebuilt from the ashes, and so the name.",
                "Our fathers came over the mountains with nothing. Now look at us."],
            "Do you need my help?": ["Perhaps. {quest_problem}. {quest_ask}",
                                     "We always need brave hands. {quest_problem}."],
            "What should I know about {village}?": ["Respect the guard, pay the merchant, and never insult the smith.",
                                                    "The people are kind but wary of strangers. Give them time.",
                                                    "Keep away from the old mine, and you will be fine."],
        },
    },
    "Bard": {
        "ask": ["Sing me a song.", "Tell me a story.", "Do you know any news?"],
        "reply": {
            "Sing me a song.": ["Gladly! Oh, the river runs and the fire burns, and the traveller never returns...",
                                "For a copper, anything! La la la, the smith's hammer rings...",
                                "Listen: Down by the mill where the cold waters flow, lived a fair maid that nobody know..."],
            "Tell me a story.": ["Once, a knight came to {village} looking for a dragon. He found only the innkeeper's cat.",
                                 "Long ago, the old mine was full of gold, until the miners dug too deep.",
                                 "There was a fisher who caught a talking trout. It told him to stop fishing."],
            "Do you know any news?": ["News? I make the news, friend. {rumour_open} {rumour}.",
                                      "I heard it in a song, so it must be true: {rumour}."],
        },
    },
}

SMALL_TALK = [
    ("{weather_q}", ["{weather_a}"]),
    ("How is business?", ["Business is {slow|good|slow, but we manage}.", "Slow since the road to {neighbour} closed.",
                          "Good enough to pay the tax collector, barely.", "Better on market days."]),
    ("Do you like living here?", ["I would not live anywhere else.", "It is home. Quiet, but home.",
                                  "Some days. On other days I dream of {neighbour}."]),
    ("Is it always this quiet?", ["Quiet? Wait until market day.", "Only until the bard starts singing.",
                                  "Quiet is good. Quiet means no trouble."]),
    ("You look busy today.", ["Busy enough to keep me out of trouble.", "Always. The work never ends.",
                              "Busy? This is a slow day, {addr}."]),
    ("How is your family?", ["Well enough, thank you for asking.", "The children grow faster than the barley.",
                             "My mother is ill, but the healer says she will mend."]),
]

GEAR = ["sword", "axe", "shield", "helmet", "dagger", "plough", "spear", "cart wheel", "armour", "scythe"]


class Scene:
    """One scene: a villager (and sometimes a second one) and the player."""

    def __init__(self, rng):
        self.rng = rng
        self.g = Grammar(rng, RULES)
        self.lines = []
        self.fold_greeting = False

    def say(self, who, template):
        # A greeting folded into the next exchange: the player's greeting opens
        # its question, the villager's short greeting opens the answer.
        if who == "Player" and self.fold_greeting:
            template = "{greet_player} " + template
        elif who != "Player" and self.fold_greeting:
            template = "{short_greet} " + template
            self.fold_greeting = False
        self.lines.append(who + ": " + tidy(self.g.x(template)))

    def price(self, role=None):
        n = self.rng.choice(NUMBERS)
        cheap = role in ("Baker", "Farmer", "Miller", "Fisher", "Innkeeper", "Stablehand")
        coin = "copper" if cheap or self.rng.random() < 0.6 else "silver"
        return n, coin, "{} {}".format(n, coin)

    def build(self):
        rng, g = self.rng, self.g
        role = rng.choices(ROLES, ROLE_WEIGHTS)[0]
        trait = rng.choice(TRAITS)
        mood = MOOD_OF[trait]
        name = rng.choice(NAMES)
        g.bind.update({"village": rng.choice(VILLAGES), "name": name, "role": ROLE_NOUN[role],
                       "trait": trait, "time": rng.choice(RULES["time"])})
        other = rng.choice([r for r in ROLES if r != role and r != "Villager"])
        g.bind["role2"] = ROLE_NOUN[other]
        g.bind["Role2"] = "The " + ROLE_NOUN[other]
        g.bind["place"] = rng.choice(PLACE_NAMES)
        g.bind["duty"] = g.x(rng.choice(DUTY[role]))
        g.bind["trait2"] = rng.choice([t for t in TRAITS if t != trait and not t.startswith("a ")])

        if rng.random() < 0.35:
            self.lines.append(tidy(g.x("{lore}")))
        if rng.random() < 0.7:
            intro = rng.choice([
                "{duty}. I am {trait}.", "{duty}. I am {trait}, and I know everyone here.",
                "My name is {name}. {duty}.", "{duty}. They call me {name}, and I am {trait}.",
                "I am {name}. {duty}, and I am {trait}.", "{duty}. I am {trait}, but {I mean well|I am fair to everyone|my heart is in the right place|I never forget a face}."])
            self.say(role, intro)

        if rng.random() < 0.12:
            self.villagers(role, other)
            return self.lines

        # the player's visit: a greeting, then a few topics, then maybe a farewell
        if rng.random() < 0.3:
            self.fold_greeting = True  # "Good morning! What news from the road?"
        else:
            self.say("Player", "{greet_player} {greet_extra}")
            self.say(role, "{greet_%s}" % mood)
        topics = ["news", "way", "who", "small", "opinion", "village", "quest", "buywhere"]
        weights = [6, 5, 3, 2, 2, 2, 3, 3]
        if role in STOCK:
            topics += ["trade", "trade", "sell"]
            weights += [8, 4, 3]
        if role in ROLE_LINES:
            topics += ["special"]
            weights += [8]
        n = rng.choice([1, 2, 2, 3, 3, 4])
        done = set()
        for _ in range(n):
            t = rng.choices(topics, weights)[0]
            if t in done and t not in ("special", "trade"):
                continue
            done.add(t)
            getattr(self, "topic_" + t)(role, mood)
        if rng.random() < 0.6:
            self.say("Player", "{bye_player}")
            self.say(role, "{bye_npc}")
        return self.lines

    # ---- topics -----------------------------------------------------------
    def topic_news(self, role, mood):
        self.say("Player", "{ask_news}")
        if self.rng.random() < 0.12:
            self.say(role, "{no_rumour}")
        else:
            self.say(role, "{rumour_open} {rumour}. {rumour_close}")
            if self.rng.random() < 0.4:
                self.say("Player", "{Really?|Is that so?|Strange.|Should I be worried?|Who told you that?}")
                self.say(role, "{So they say.|I only tell what I hear.|Ask the guard if you don't believe me.|"
                         "Stay on the road and you will be fine.|The innkeeper told me, and she is never wrong.}")

    def topic_way(self, role, mood):
        target = self.rng.choice(PLACE_NAMES)
        self.g.bind["target"] = target
        self.g.bind["dir"] = self.rng.choice(PLACES[target])
        self.g.bind["is"] = "are" if target.endswith("s") else "is"
        self.g.bind["Is"] = self.g.bind["is"].capitalize()
        self.say("Player", "{ask_way}")
        if role == "Smith" and target == "smithy" or ROLE_PLACE.get(role) == target:
            self.say(role, "{You are standing in it, {addr}.|You found it. This is the {target}.|"
                     "Right here. What do you need?}")
            return
        self.g.bind["it_is"] = "They are" if self.g.bind["is"] == "are" else "It is"
        self.g.bind["find"] = "find them" if self.g.bind["is"] == "are" else "find it"
        self.say(role, "{way_open} {{it_is}|{it_is}|You will {find}} {dir}. {way_close}")

    def topic_who(self, role, mood):
        self.say("Player", "{ask_who}")
        self.say(role, "{I am {name}, the {role}.|My name is {name}.|They call me {name}.} {duty}. "
                 "[{And you, {addr}?|What brings you here?}]")
        if self.rng.random() < 0.3:
            self.say("Player", "{I am just passing through.|I am looking for work.|I came from {neighbour}.|"
                     "Nobody important.}")
            self.say(role, "{Then welcome to {village}.|Well, keep out of trouble.|Then we will get along.|"
                     "Everyone is somebody here.}")

    def topic_small(self, role, mood):
        q, answers = self.rng.choice(SMALL_TALK)
        self.say("Player", q)
        self.say(role, self.rng.choice(answers))

    def topic_opinion(self, role, mood):
        self.say("Player", "{ask_opinion}")
        self.say(role, "{opinion}")

    def topic_village(self, role, mood):
        self.say("Player", "{ask_village}")
        self.say(role, "{{village} is a {quiet|busy|good|small} place. [{lore}]|"
                 "I have lived here all my life. {lore}|{lore} [What else is there to say?]|"
                 "Safe enough, if you respect the guard. {lore}}")

    def topic_quest(self, role, mood):
        self.say("Player", "{Is there any work for me?|Do you need help?|Any jobs?|I am looking for work.|"
                 "Can I help you with anything?}")
        if self.rng.random() < 0.15:
            self.say(role, "{Not from me. Ask the elder.|No, but the guard might. Try the {gate}.|"
                     "Work? Sweep the floor if you want. Ha!}".replace("{gate}", "gate"))
            return
        self.say(role, "{{Yes.|Actually, yes.|As it happens, I do.|Perhaps.}|} {quest_problem}. {quest_ask} "
                 "{If you do, {reward}.|{reward}.}")
        if self.rng.random() < 0.75:
            self.say("Player", "{accept}")
            self.say(role, "{accept_reply}")
        else:
            self.say("Player", "{decline}")
            self.say(role, "{decline_reply}")

    def topic_trade(self, role, mood):
        rng, g = self.rng, self.g
        stock = rng.sample(STOCK[role], rng.choice([2, 3, 3, 4]))
        plain = [s.split(" ", 1)[1] for s in stock]
        listing = ", ".join(stock[:-1]) + " and " + stock[-1]
        g.bind["listing"] = listing
        self.say("Player", "{ask_sale}")
        self.say(role, "{sale_open} {listing}." if rng.random() < 0.5 else "I have {listing}. [{price_sweet}]")
        i = rng.randrange(len(stock))
        g.bind["item"] = plain[i]
        n, coin, price = self.price(role)
        g.bind["price"] = price
        self.say("Player", "{ask_price}")
        self.say(role, "{{price} for the {item}.|The {item}? {price}.|For you, {price}.|{price}, and cheap at that.} "
                 "{price_sweet}")
        r = rng.random()
        if r < 0.35 and NUM_VALUE.get(n, 0) > 2:
            lower = [w for w, v in NUM_VALUE.items() if 1 < v < NUM_VALUE[n]]
            offer = "{} {}".format(rng.choice(lower), coin)
            g.bind["offer"], g.bind["Offer"] = offer, offer[0].upper() + offer[1:]
            self.say("Player", "{haggle}")
            if rng.random() < 0.5:
                self.say(role, "{haggle_yes}")
            else:
                self.say(role, "{haggle_no}")
                if rng.random() < 0.5:
                    if rng.random() < 0.6:
                        self.say("Player", "{Fine, {price} then.|All right, {price}.|You win. {price}.}")
                        self.say(role, "{buy_reply}")
                    else:
                        self.say("Player", "{Then I'll leave it.|Forget it, then.|No thank you.}")
                        self.say(role, "{Suit yourself.|Your loss, {addr}.|Come back when your purse is heavier.}")
        elif r < 0.75:
            self.say("Player", "{buy}")
            self.say(role, "{buy_reply}")
        else:
            self.say("Player", "{Too expensive for me.|Maybe another day.|Hmm, let me think about it.}")
            self.say(role, "{Suit yourself.|It will still be here tomorrow. Maybe.|Don't wait too long, {addr}.}")

    def topic_buywhere(self, role, mood):
        seller = self.rng.choice([r for r in SELLERS if r != role])
        thing = self.rng.choice(STOCK[seller])
        self.g.bind["thing"] = thing
        self.g.bind["thing_plain"] = thing.split(" ", 1)[1]
        self.g.bind["seller"] = ROLE_NOUN[seller]
        self.g.bind["sp"] = ROLE_PLACE[seller]
        self.g.bind["sdir"] = self.rng.choice(PLACES[ROLE_PLACE[seller]])
        self.say("Player", "{Where can I {buy|find|get} {thing}?|I need {thing}. Who sells one?|"
                 "Who in {village} sells {thing}?}")
        self.say(role, "{Try the {seller}.|The {seller} has them.|Go and see the {seller}.|"
                 "Ask the {seller}{|, and tell them I sent you}.} "
                 "{The {sp} is {sdir}.|You will find the {seller} at the {sp}.|}")

    def topic_sell(self, role, mood):
        self.g.bind["loot"] = self.rng.choice(LOOT)
        self.g.bind["price"] = self.price(role)[2]
        self.say("Player", "{sell_ask}")
        self.say(role, "{sell_yes}" if self.rng.random() < 0.7 else "{sell_no}")

    def topic_special(self, role, mood):
        spec = ROLE_LINES[role]
        ask = self.rng.choice(spec["ask"])
        self.g.bind["gear"] = self.rng.choice(GEAR)
        self.g.bind["price"] = self.price(role)[2]
        self.say("Player", ask)
        self.say(role, self.rng.choice(spec["reply"][ask]))

    # ---- two villagers talking -------------------------------------------
    def villagers(self, a, b):
        g = self.g
        self.say(b, "{Good {time}, {role}.|Morning, {role}.|Hello there, {role}.|Evening, {role}. Busy day?}")
        self.say(a, "{Good {time}.|Hello, {role2}.|Busy enough.|Quiet, thank the gods.} "
                 "{Any news?|Have you heard?|What brings you by?|}")
        for _ in range(self.rng.choice([1, 2, 2, 3])):
            speaker = self.rng.choice([a, b])
            self.say(speaker, "{rumour_open} {rumour}.")
            self.say(b if speaker == a else a, "{Really?|I don't believe it.|So I heard too.|"
                     "We should tell the elder.|The guard should know about that.|Strange times indeed.|"
                     "That explains a lot.} [{Mind how you go.|Keep it to yourself.}]")
        self.say(b, "{Well, I must get back to work.|I'll see you at the inn tonight.|Take care, {role}.|"
                 "Back to work, then.}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--scenes", type=int, default=60000)
    ap.add_argument("--val-scenes", type=int, default=600)
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    os.makedirs(a.out, exist_ok=True)
    scenes = ["\n".join(Scene(rng).build()) + "\n" for _ in range(a.scenes + a.val_scenes)]
    with open(os.path.join(a.out, "train.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(scenes[:a.scenes]))
    with open(os.path.join(a.out, "val.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(scenes[a.scenes:]))


if __name__ == "__main__":
    main()
