"""Noun lexicon for the offline entity-word extractor: which words name an entity, and of which kind.

Subjects are people and animals, objects are things that can be picked up or moved, backgrounds are scenes
and surfaces. Clothing and body parts are listed separately because they describe a subject rather than name
a new entity ("a woman in a white shirt", "with his feet").
"""

SUBJECTS = frozenset(
    """
    person people man men woman women boy boys girl girls child children kid kids baby babies player players
    guy guys lady ladies adult adults teenager teenagers student students athlete athletes dancer dancers
    singer singers chef cook worker workers driver rider riders runner runners skier surfer swimmer
    astronaut photographer soldier soldiers officer doctor nurse teacher family crowd couple friends
    cat cats kitten kittens dog dogs puppy puppies horse horses cow cows sheep goat goats pig pigs bird birds
    duck ducks chicken chickens fish parrot owl eagle bear bears lion lions tiger tigers elephant elephants
    monkey monkeys rabbit rabbits mouse mice squirrel deer fox wolf zebra giraffe snake turtle frog panda
    animal animals pet pets
    """.split()
)

OBJECTS = frozenset(
    """
    ball balls basketball basketballs football soccerball cup cups mug mugs glass glasses bottle bottles
    kettle pot pan bowl bowls plate plates spoon fork knife table tables chair chairs sofa couch bed desk
    cushion pillow blanket box boxes bag bags backpack suitcase book books phone laptop computer keyboard
    screen television tv camera guitar piano drum drums violin microphone car cars truck bus bicycle bike
    motorcycle motorbike boat ship plane airplane train rocket toy toys doll robot umbrella hat helmet
    leash rope racket bat frisbee kite balloon flower flowers vase lamp clock door window hoop net goal
    coffee tea food pizza cake bread apple apples banana oranges egg eggs sandwich wheel logo sign card
    cards pen paper bucket hose ladder tool hammer
    """.split()
)

BACKGROUNDS = frozenset(
    """
    grass lawn field fields park garden street road path sidewalk track beach sand sea ocean water lake
    river pool snow ice sky clouds mountain mountains hill hills forest woods trees tree plants bushes
    wall walls floor ground carpet room kitchen bedroom office stage gym court cafeteria classroom
    restaurant store shop market city town building buildings house yard backyard desert gravel rocks
    space stars background scene arena stadium studio hall corridor bridge
    """.split()
)

# Words that qualify a subject instead of naming a separate entity.
ATTRIBUTES = frozenset(
    """
    shirt t-shirt tshirt top jeans pants trousers shorts skirt dress jacket coat sweater hoodie suit uniform
    shoes boots socks gloves scarf sunglasses cap costume outfit
    arm arms hand hands foot feet leg legs head face hair eyes eye mouth finger fingers body back knee knees
    """.split()
)

# Irregular plurals, for people who read "people" as many "person"s.
SINGULAR = {"people": "person", "men": "man", "women": "woman", "children": "child", "mice": "mouse"}


def kind_of(word: str) -> str | None:
    """'subject', 'object', 'background' or None for a lower-case word."""
    if word in SUBJECTS:
        return "subject"
    if word in OBJECTS:
        return "object"
    if word in BACKGROUNDS:
        return "background"
    return None
